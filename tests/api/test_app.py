"""Health probes, authentication, configuration refusals and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

import vigil
from api import create_app
from tests.api.conftest import TOKEN
from vigil.errors import ConfigurationError
from vigil.settings import Settings


def anonymous(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_healthz_needs_no_token(app: FastAPI) -> None:
    async with anonymous(app) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_reports_ready_when_the_database_answers(app: FastAPI) -> None:
    async with anonymous(app) as c:
        r = await c.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


async def test_readyz_is_503_with_a_reason_when_the_pool_is_not_open(api_settings: Settings) -> None:
    app = create_app(api_settings)  # lifespan never entered: no pool
    async with anonymous(app) as c:
        ready = await c.get("/readyz")
        alerts = await c.get("/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "database pool not open"}
    assert alerts.status_code == 503


async def test_readyz_after_shutdown_is_503(api_settings: Settings) -> None:
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        pass
    async with anonymous(app) as c:
        assert (await c.get("/readyz")).status_code == 503


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN}x"},
        # Non-ASCII bytes in the header must be a 401, not a TypeError from compare_digest.
        {"Authorization": b"Bearer \xe9\xe9\xe9"},
    ],
    ids=["missing", "wrong", "basic-scheme", "empty", "prefix-of-longer", "non-ascii"],
)
async def test_alerts_refuse_without_the_right_token(app: FastAPI, headers: dict[str, Any]) -> None:
    async with anonymous(app) as c:
        for path in ("/api/v1/alerts", "/api/v1/alerts/anything"):
            r = await c.get(path, headers=headers)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "token" in r.json()["detail"]


async def test_the_right_token_is_accepted_with_any_scheme_case(app: FastAPI) -> None:
    async with anonymous(app) as c:
        r = await c.get("/api/v1/alerts", params={"limit": 1}, headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200


async def test_openapi_describes_the_api(app: FastAPI) -> None:
    async with anonymous(app) as c:
        doc = (await c.get("/openapi.json")).json()
        docs = await c.get("/docs")
    assert doc["info"] == {
        "title": "Vigil",
        "version": vigil.__version__,
        "description": doc["info"]["description"],
    }
    assert {"/healthz", "/readyz", "/api/v1/alerts", "/api/v1/alerts/{alert_id}"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"AlertPublic", "AlertDetail", "AlertPage", "AuditEntry"} <= set(schemas)
    assert "name_zh" in schemas["AlertPublic"]["properties"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "401" in doc["paths"]["/api/v1/alerts"]["get"]["responses"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_production_without_a_static_token_accepts_keys_only(settings: Settings) -> None:
    prod = Settings(mode="production", database_url=settings.database_url, api_token=None)
    app = create_app(prod)
    assert prod.api_token is None  # nothing generated outside demo mode
    async with app.router.lifespan_context(app), anonymous(app) as c:
        for guess in ("", "None", "changeme", "operator"):
            r = await c.get("/api/v1/alerts", headers={"Authorization": f"Bearer {guess}"})
            assert r.status_code == 401, guess


def test_production_with_a_weak_token_refuses_to_create_the_app(settings: Settings) -> None:
    prod = Settings(mode="production", database_url=settings.database_url, api_token=SecretStr("changeme"))
    with pytest.raises(ConfigurationError, match="too weak"):
        create_app(prod)


def test_no_database_url_refuses_to_create_the_app() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        create_app(Settings(mode="demo", database_url=None, api_token=SecretStr(TOKEN)))


async def test_demo_mode_generates_a_token_that_works(settings: Settings) -> None:
    demo = settings.model_copy(update={"api_token": None})
    app = create_app(demo)
    assert demo.api_token is not None  # generated, for the demo to print
    generated = demo.api_token.get_secret_value()
    async with app.router.lifespan_context(app), anonymous(app) as c:
        r = await c.get(
            "/api/v1/alerts", params={"limit": 1}, headers={"Authorization": f"Bearer {generated}"}
        )
    assert r.status_code == 200
