"""Live view over real HTTP, Kafka and PostgreSQL: the simulator's MJPEG stream pulled by camera
ingest, frames published only while the API holds a lease, served as MJPEG to an operator and the
owning enterprise (another enterprise: 404), stopping within seconds when the viewer goes or its
key is revoked."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ingest.camera.service import CameraIngest
from simulators.camera import KitchenScene
from simulators.mjpeg import MjpegServer
from tests.api.conftest import bearer, make_key
from vigil.cameras import register_camera
from vigil.keys import revoke_key

SAMPLE_FPS = 4


# Each test's cameras are disabled afterwards (tests/conftest.py), so later ingests pull no dead streams.
pytestmark = pytest.mark.usefixtures("retire_cameras")


async def read_frames(url: str, headers: dict[str, str], count: int, timeout: float = 20.0) -> int:
    """Read until `count` JPEG parts arrived (or the stream ended); returns how many did."""
    seen, buffer = 0, b""
    async with httpx.AsyncClient(timeout=timeout) as http, http.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        deadline = time.monotonic() + timeout
        async for chunk in r.aiter_bytes():
            buffer += chunk
            while b"\xff\xd9\r\n" in buffer:  # a JPEG's end marker, then the part's CRLF
                _, buffer = buffer.split(b"\xff\xd9\r\n", 1)
                seen += 1
            if seen >= count or time.monotonic() > deadline:
                break
    return seen


async def published_settles(ingest: CameraIngest, within: float) -> float:
    """Seconds until camera ingest stops publishing live frames (none for 1.5 s)."""
    assert ingest.live is not None
    started = time.monotonic()
    last, last_change = ingest.live.published, time.monotonic()
    while time.monotonic() - last_change < 1.5:
        await asyncio.sleep(0.1)
        if ingest.live.published != last:
            last, last_change = ingest.live.published, time.monotonic()
        assert time.monotonic() - started < within, "camera ingest kept publishing live frames"
    return last_change - started


async def test_live_view_for_operator_and_owner_only_and_only_while_watched(
    settings, api_settings, pool, uid, api_url
):
    ent, camera = f"ent-{uid}", f"live-{uid}"
    other = f"other-{uid}"
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, 'other')", (other,))
    with MjpegServer(KitchenScene(), fps=8) as stream:
        await register_camera(
            pool,
            enterprise_id=ent,
            site_id=f"site-{uid}",
            camera_id=camera,
            source=stream.url,
            sample_fps=SAMPLE_FPS,
        )
        operator, own, stranger = (
            await make_key(pool, "operator"),
            await make_key(pool, "enterprise", ent),
            await make_key(pool, "enterprise", other),
        )
        url = f"{api_url}/api/v1/cameras/{camera}/live"
        async with CameraIngest(settings, serve_http=False) as ingest:
            assert ingest.live is not None
            await asyncio.sleep(2)
            assert ingest.live.published == 0  # nobody watches: nothing flows
            started = time.monotonic()
            assert await read_frames(url, bearer(operator), 8) == 8
            rate = 8 / (time.monotonic() - started)
            assert rate <= SAMPLE_FPS * 1.5  # the sampling rate, not the camera's 8 fps
            # The viewer went: its lease is ended at once, and the frames stop.
            assert await published_settles(ingest, 8) < 4
            assert await read_frames(url, bearer(own), 4) == 4
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(url, headers=bearer(stranger))).status_code == 404
                assert (
                    await http.get(f"{api_url}/api/v1/cameras/nope-{uid}/live", headers=bearer(operator))
                ).status_code == 404
                assert (await http.get(url)).status_code == 401
            await published_settles(ingest, 8)


async def test_a_revoked_key_stops_the_live_view_within_seconds(settings, api_settings, pool, uid, api_url):
    ent, camera = f"ent-{uid}", f"live-{uid}"
    with MjpegServer(KitchenScene(), fps=8) as stream:
        await register_camera(
            pool,
            enterprise_id=ent,
            site_id=f"site-{uid}",
            camera_id=camera,
            source=stream.url,
            sample_fps=SAMPLE_FPS,
        )
        key = await make_key(pool, "enterprise", ent)
        key_id = key.split("_")[1]
        url = f"{api_url}/api/v1/cameras/{camera}/live"
        async with CameraIngest(settings, serve_http=False) as ingest:
            seen, ended_at = 0, None
            async with (
                httpx.AsyncClient(timeout=30) as http,
                http.stream("GET", url, headers=bearer(key)) as r,
            ):
                assert r.status_code == 200
                revoked_at = None
                async for chunk in r.aiter_bytes():
                    seen += chunk.count(b"\xff\xd9\r\n")
                    if seen >= 3 and revoked_at is None:
                        async with pool.connection() as conn, conn.transaction():
                            await revoke_key(conn, key_id)
                        revoked_at = time.monotonic()
                ended_at = time.monotonic()
            assert revoked_at is not None and ended_at - revoked_at < 6
            await published_settles(ingest, 15)
