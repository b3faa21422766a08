"""Body limits hold while the body is read, before authentication: a real API process (`vigil run
api`) is sent 400 MB bodies, declared and chunked, without a credential, and must refuse them
(413, or 401 for a route that never reads its body) without its memory growing."""

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
from tests.api.conftest import TOKEN
from vigil.settings import Settings


@pytest.fixture
async def api_process(settings: Settings) -> AsyncIterator[tuple[int, int]]:
    """`vigil run api` as its own process; (port, pid)."""
    assert settings.database_url
    port = free_port()
    env = os.environ | {
        "VIGIL_DATABASE_URL": settings.database_url,
        "VIGIL_API_TOKEN": TOKEN,
        "VIGIL_API_PORT": str(port),
        "VIGIL_EARLY_WARNING": "false",
    }
    workdir = Path(tempfile.mkdtemp(prefix="vigil-body-limits-"))
    service = ServiceProcess("api", env, workdir)
    service.spawn()
    try:
        await service.wait_ready()
        yield port, service.pid
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("path", "chunked"),
    [
        pytest.param("/api/v1/keys", False, id="json-declared"),
        pytest.param("/api/v1/keys", True, id="json-chunked"),
        pytest.param("/api/v1/enterprise/alerts/a-1/rectification", False, id="upload-declared"),
        pytest.param("/api/v1/enterprise/alerts/a-1/rectification", True, id="upload-chunked"),
    ],
)
async def test_a_400_mb_body_is_refused_without_memory_growth(
    api_process: tuple[int, int], path: str, chunked: bool
) -> None:
    port, pid = api_process
    before = rss_kib(pid)
    status = await send_huge_body(port, path, chunked=chunked)
    await asyncio.sleep(0.5)  # let the process settle whatever it allocated
    growth = rss_kib(pid) - before
    assert growth < MAX_GROWTH_KIB, f"RSS grew by {growth} KiB refusing a 400 MB body ({status})"
    assert status in (413, 401), status


async def test_a_body_over_the_json_limit_is_413_even_with_a_credential(api_process: tuple[int, int]) -> None:
    port, pid = api_process
    before = rss_kib(pid)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status = await send_huge_body(port, "/api/v1/keys", chunked=True, headers=auth)
    assert status == 413
    assert rss_kib(pid) - before < MAX_GROWTH_KIB
