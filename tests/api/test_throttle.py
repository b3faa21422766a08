"""Failed authentication is throttled per client address (429 with Retry-After), logged and
counted; the limiter's table stays bounded however many addresses fail."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.throttle import WINDOW_S, FailedAuthLimiter
from tests.api.conftest import bearer, make_key

BAD = bearer("vigil_0123456789ab_" + "x" * 43)  # well-formed, not a key


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_an_address_that_keeps_failing_is_answered_429(
    app: FastAPI, pool: Any, api_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    limit = api_settings.api_auth_failures_per_minute
    key = bearer(await make_key(pool, "operator"))
    failures, throttled = counter("vigil_api_auth_failures_total"), counter("vigil_api_auth_throttled_total")
    caplog.set_level(logging.WARNING, logger="api.auth")
    async with client_from(app, "203.0.113.7") as attacker, client_from(app, "198.51.100.2") as colleague:
        for _ in range(limit):
            assert (await attacker.get("/api/v1/auth/me", headers=BAD)).status_code == 401
        refused = await attacker.get("/api/v1/auth/me", headers=BAD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_S
        # The address is held off whatever it presents; other addresses are not.
        assert (await attacker.get("/api/v1/auth/me", headers=key)).status_code == 429
        assert (await colleague.get("/api/v1/auth/me", headers=key)).status_code == 200
        # No credential at all guesses nothing: a plain 401, never counted.
        assert (await colleague.get("/api/v1/auth/me")).status_code == 401
    assert counter("vigil_api_auth_failures_total") - failures == limit
    assert counter("vigil_api_auth_throttled_total") - throttled == 2
    logged = [r.getMessage() for r in caplog.records if "refused credential" in r.getMessage()]
    assert len(logged) == limit and all("203.0.113.7" in m for m in logged)
    assert all("x" * 43 not in m for m in logged)  # never the credential itself


def test_the_window_passes_and_the_table_stays_bounded() -> None:
    now = [1000.0]
    limiter = FailedAuthLimiter(3, max_addresses=100, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
    assert limiter.retry_after("a") == WINDOW_S
    now[0] += WINDOW_S - 0.5
    assert limiter.retry_after("a") == 1
    now[0] += 1
    assert limiter.retry_after("a") is None and len(limiter) == 0
    for i in range(10_000):  # a flood from many addresses
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
