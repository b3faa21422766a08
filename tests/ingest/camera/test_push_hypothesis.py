"""Hostile bodies and headers against the real camera push endpoint (real Kafka, real registry):
random bytes, truncated and corrupted JPEGs, polyglots, headers declaring giant dimensions, odd
content types and timestamps. Never a 5xx; every refusal of the body has a reason and a dead
letter; a valid frame is accepted."""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.camera.http import create_camera_app
from ingest.camera.service import CameraIngest
from tests.hostile import BOUNDED
from vigil.cameras import register_camera
from vigil.frames import MAX_FRAME_SIDE
from vigil.settings import Settings

pytestmark = pytest.mark.integration


def jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".jpg", image)[1].tobytes())


VALID = jpeg()
SOF = VALID.find(b"\xff\xc0")


def declaring(width: int, height: int, base: bytes = VALID) -> bytes:
    """`base` with its frame header claiming another size (the data stays that of a small image)."""
    data = bytearray(base)
    data[SOF + 5 : SOF + 7] = height.to_bytes(2, "big")
    data[SOF + 7 : SOF + 9] = width.to_bytes(2, "big")
    return bytes(data)


bodies = st.one_of(
    st.binary(max_size=400),
    st.integers(0, len(VALID) - 1).map(lambda n: VALID[:n]),  # truncated
    st.builds(lambda b: b"\xff\xd8\xff" + b, st.binary(max_size=400)),  # JPEG magic, then garbage
    st.builds(lambda w, h: declaring(w, h), st.integers(0, 65535), st.integers(0, 65535)),
    st.sampled_from(
        [
            VALID + b"PK\x03\x04" + b"\x00" * 30,  # JPEG/ZIP polyglot
            VALID + b"<script>alert(1)</script>",  # JPEG/HTML polyglot
            b"GIF89a<?php system($_GET[1]); ?>",
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
            b"\xff\xd8\xff\xd9",  # start, then end of image
        ]
    ),
    st.builds(  # a few bytes overwritten somewhere after the magic: a corrupted frame
        lambda i, b: VALID[:i] + b + VALID[i + len(b) :],
        st.integers(3, len(VALID) - 1),
        st.binary(min_size=1, max_size=8),
    ),
)
content_types = st.sampled_from(
    ["image/jpeg", "image/jpeg; charset=binary", "IMAGE/JPEG", "image/png", "", "text/html"]
)
timestamps = st.one_of(st.none(), st.sampled_from(["0", "-1", "abc", "1e3", str(2**70), " 1 ", "١٢٣"]))


@pytest.fixture
async def push(settings: Settings, pool: Any, uid: str) -> Any:
    camera = f"edge-{uid}"
    await register_camera(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", camera_id=camera, source="push"
    )
    s = settings.model_copy(update={"frame_max_bytes": 64 * 1024})
    async with CameraIngest(s, serve_http=False) as ingest:
        app = create_camera_app(ingest, s)
        token = s.require_secret("camera_push_token")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as http:
            yield http, camera, token


async def test_hostile_frames_never_crash_the_push_endpoint(push: Any) -> None:
    http, camera, token = push
    loop = asyncio.get_running_loop()
    outcomes: dict[int, int] = {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def post(body: bytes, content_type: str, ts: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        if ts is not None:
            headers["X-Vigil-Timestamp"] = ts.encode()  # type: ignore[assignment]  # raw UTF-8 on the wire
        return await http.post(f"/v1/cameras/{camera}/frames", content=body, headers=headers)

    # Hypothesis drives synchronous tests: run it in a thread that hands each request to this loop.
    @BOUNDED
    @given(bodies, content_types, timestamps)
    def hostile(body: bytes, content_type: str, ts: str | None) -> None:
        response = asyncio.run_coroutine_threadsafe(post(body, content_type, ts), loop).result(60)
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        assert response.status_code in (202, 413, 415, 422), response.text
        if response.status_code == 202:
            assert content_type.split(";")[0].lower() == "image/jpeg" and body.startswith(b"\xff\xd8\xff")
        elif isinstance(response.json()["detail"], dict):  # refused by Vigil, not by header parsing
            detail = response.json()["detail"]
            assert detail["reason"] and detail["detail"]

    await asyncio.to_thread(hostile)
    # 2 GB would show a decompression bomb got through; decoding legitimate small frames costs little.
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 500, f"max RSS grew by {grown_mb:.0f} MB"
    assert sum(outcomes.values()) >= 100 and outcomes.get(422, 0) > 0, outcomes
    print(f"push endpoint: {sum(outcomes.values())} hostile requests, statuses {sorted(outcomes.items())}")

    for body, reason in (
        (declaring(20000, 20000), "frame_too_large"),
        (declaring(MAX_FRAME_SIDE + 1, 16), "frame_too_large"),
        (declaring(0, 48), "corrupt_jpeg"),
    ):
        response = await post(body, "image/jpeg", None)
        assert response.status_code == 422 and response.json()["detail"]["reason"] == reason
    good = await post(jpeg(seed=7), "image/jpeg", None)
    assert good.status_code == 202, good.text
