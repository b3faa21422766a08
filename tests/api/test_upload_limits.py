"""Rectification photos cost bounded memory: the pixel count is refused from the header before any
decode, every header is checked before any photo is decoded, and decodes across requests share a
fixed number of slots. Peak memory is measured with tracemalloc, which sees the decoded pixels
(OpenCV hands them over as NumPy arrays, which NumPy reports to tracemalloc)."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from api import create_app
from tests.api.conftest import bearer, make_key
from tests.api.test_enterprise import rectify
from tests.lifecycle import Site, open_alert, violation
from vigil.settings import Settings

MIB = 1024 * 1024


def png(width: int, height: int) -> bytes:
    """A real PNG of one colour: a few KB on the wire, width x height x 3 bytes once decoded."""
    ok, encoded = cv2.imencode(".png", np.zeros((height, width), np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.fixture
async def own(pool: Any, site: Site) -> dict[str, str]:
    return bearer(await make_key(pool, "enterprise", site.enterprise_id))


@pytest.fixture
async def slots_of_one(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with one decode slot, so the bound is exactly one decoded photo at a time."""
    app = create_app(api_settings.model_copy(update={"api_upload_decode_slots": 1}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


async def peak_bytes(work: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """What `work` returns, and the most memory traced at once while it ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = await work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - base


async def test_an_8000x8000_png_is_refused_from_its_header_before_decoding(
    client: httpx.AsyncClient, pool: Any, site: Site, own: dict[str, str]
) -> None:
    a = await open_alert(pool, violation(site))
    bomb = png(8000, 8000)  # ~70 KB that would decode to 192 MB
    r, peak = await peak_bytes(lambda: rectify(client, a["alert_id"], own, [("bomb.png", bomb, "image/png")]))
    assert r.status_code == 422, r.text
    assert "8000x8000" in r.json()["detail"] and "megapixels" in r.json()["detail"]
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB refusing a decompression bomb"


async def test_one_bad_header_among_nine_photos_decodes_none(
    client: httpx.AsyncClient, pool: Any, site: Site, own: dict[str, str]
) -> None:
    a = await open_alert(pool, violation(site))
    good = png(2000, 2000)  # 12 MB each once decoded
    photos = [(f"{i}.png", good, "image/png") for i in range(9)]
    photos.append(("bad.png", good[:20], "image/png"))  # the header is cut off
    r, peak = await peak_bytes(lambda: rectify(client, a["alert_id"], own, photos))
    assert r.status_code == 422 and "bad.png" in r.json()["detail"], r.text
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB: photos were decoded before the bad header was seen"


async def test_concurrent_uploads_decode_one_at_a_time(
    slots_of_one: httpx.AsyncClient, pool: Any, site: Site, own: dict[str, str]
) -> None:
    photo = png(3000, 2000)  # 18 MB decoded
    decoded = 3000 * 2000 * 3
    alerts = [await open_alert(pool, violation(site, source=f"cam-{i}")) for i in range(6)]

    async def six_at_once() -> list[httpx.Response]:
        return await asyncio.gather(
            *(rectify(slots_of_one, a["alert_id"], own, [("p.png", photo, "image/png")]) for a in alerts)
        )

    responses, peak = await peak_bytes(six_at_once)
    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    # One decoded photo (and its encoder's working copy) at a time, not six.
    assert peak < 2 * decoded, f"peak {peak / MIB:.1f} MiB for six uploads with one decode slot"
