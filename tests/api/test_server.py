"""ApiService really serving over TCP with uvicorn, started and stopped like any Vigil service."""

from __future__ import annotations

import socket

import httpx
import pytest

from api import ApiService
from shell.infra import free_port
from tests.api.conftest import AUTH
from vigil.errors import InfrastructureUnavailable
from vigil.settings import Settings


async def test_api_service_serves_http_until_stopped(api_settings: Settings) -> None:
    port = free_port()
    service = ApiService(api_settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port}))
    assert service.url == f"http://127.0.0.1:{port}"
    async with service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as c:
            health = await c.get("/healthz")
            ready = await c.get("/readyz")
            page = await c.get("/api/v1/alerts", params={"limit": 1}, headers=AUTH)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert ready.status_code == 200, ready.text
        assert page.status_code == 200
        assert service.failed is not None and not service.failed.done()
    assert service.app.state.pool is None  # lifespan shutdown ran: the pool is closed
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as c:
            await c.get(f"{service.url}/healthz")


async def test_api_service_start_fails_cleanly_when_the_port_is_taken(api_settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = ApiService(api_settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port}))
        # uvicorn's sys.exit() on a bind failure must become this service's error, not end pytest.
        with pytest.raises(InfrastructureUnavailable, match="failed to start"):
            await service.start()
        await service.stop()
    assert service.app.state.pool is None
