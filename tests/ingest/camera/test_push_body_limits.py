"""The camera push endpoint bounds bodies before the credential too: camera ingest as its own
process (`vigil run camera-ingest`) refuses 400 MB bodies, declared and chunked, without growing."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shell.faults.harness import ServiceProcess, rss_kib
from shell.infra import free_port
from tests.api.bodies import MAX_GROWTH_KIB, send_huge_body
from vigil.settings import Settings


@pytest.fixture
async def camera_process(settings: Settings) -> AsyncIterator[tuple[int, int]]:
    assert settings.database_url and settings.kafka_bootstrap
    port = free_port()
    env = os.environ | {
        "VIGIL_DATABASE_URL": settings.database_url,
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_INGEST_HTTP_PORT": str(port),
    }
    service = ServiceProcess("camera-ingest", env, Path(tempfile.mkdtemp(prefix="vigil-push-limits-")))
    service.spawn()
    try:
        await service.wait_ready()
        yield port, service.pid
    finally:
        service.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_a_400_mb_push_is_refused_without_memory_growth(
    camera_process: tuple[int, int], chunked: bool
) -> None:
    port, pid = camera_process
    before = rss_kib(pid)
    status = await send_huge_body(port, "/v1/cameras/cam-1/frames", chunked=chunked)
    await asyncio.sleep(0.5)
    growth = rss_kib(pid) - before
    assert growth < MAX_GROWTH_KIB, f"RSS grew by {growth} KiB refusing a 400 MB push ({status})"
    assert status in (413, 401), status


async def test_a_body_on_a_read_only_route_is_refused_early(camera_process: tuple[int, int]) -> None:
    port, _ = camera_process
    assert await send_huge_body(port, "/healthz", chunked=False) == 413
