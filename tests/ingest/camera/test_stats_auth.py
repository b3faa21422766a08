"""Camera ingest's per-camera counters list every tenant's cameras and their tamper state: outside
demo mode they need the metrics token (and are off without one); only demo mode serves them open."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr

from ingest.camera.http import create_camera_app
from ingest.camera.service import CameraIngest
from vigil.settings import Settings

PATHS = ("/v1/cameras/stats", "/metrics")


@asynccontextmanager
async def camera_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with CameraIngest(settings, serve_http=False) as ingest:
        transport = httpx.ASGITransport(app=create_camera_app(ingest, settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://camera-ingest") as http:
            yield http


def production(settings: Settings, metrics_token: str | None) -> Settings:
    return settings.model_copy(
        update={
            "mode": "production",
            "camera_push_token": SecretStr(secrets.token_urlsafe(24)),
            "camera_metrics_token": SecretStr(metrics_token) if metrics_token else None,
        }
    )


async def test_stats_need_the_metrics_token_outside_demo_mode(settings: Settings) -> None:
    token = secrets.token_urlsafe(24)
    async with camera_http(production(settings, token)) as http:
        for path in PATHS:
            assert (await http.get(path)).status_code == 401
            assert (
                await http.get(path, headers={"Authorization": "Bearer not-the-token"})
            ).status_code == 401
            raw = {"Authorization": "Bearer ünïcode".encode()}  # raw UTF-8 on the wire
            assert (await http.get(path, headers=raw)).status_code == 401  # type: ignore[arg-type]
            assert (await http.get(path, headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await http.get("/healthz")).status_code == 200  # the liveness probe needs nothing


async def test_stats_are_off_outside_demo_mode_without_a_token(settings: Settings) -> None:
    async with camera_http(production(settings, None)) as http:
        for path in PATHS:
            assert (await http.get(path)).status_code == 403


@pytest.mark.parametrize("path", PATHS)
async def test_demo_mode_serves_them_open(settings: Settings, path: str) -> None:
    demo = settings.model_copy(update={"mode": "demo", "camera_metrics_token": None})
    async with camera_http(demo) as http:
        assert (await http.get(path)).status_code == 200
