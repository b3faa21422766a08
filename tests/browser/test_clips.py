"""An alert's event clip and its camera's live view in a real browser: Debian's Chromium plays
the WebM camera ingest's encoder writes (VP8, from OpenCV's bundled FFmpeg) in the operator's
alert detail and on the enterprise's page (the <video> element reports a duration > 0), and the
detail's live button shows the camera's MJPEG frames until the dialog is closed, when camera
ingest stops publishing them."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from playwright.async_api import Page, expect

from ingest.camera.clips import encode_clip, jpeg_images
from ingest.camera.service import CameraIngest
from simulators.camera import KitchenScene
from simulators.mjpeg import MjpegServer
from tests.browser.conftest import Pages
from tests.browser.running import Running, jpeg, publish
from tests.lifecycle import violation
from vigil.cameras import register_camera

pytestmark = pytest.mark.integration

FRAMES = "() => Number(document.querySelector('[data-testid=live-state]')?.dataset.frames ?? 0) >= 3"
DURATION = (
    "() => { const v = document.querySelector('[data-testid=evidence-clip]'); return v && v.duration > 0 }"
)


async def _sign_in(page: Page, url: str, key: str, role: str) -> None:
    await page.goto(url)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("role")).to_contain_text(role)


async def test_the_event_clip_plays_in_the_detail_and_on_the_enterprise_page(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    t0 = int(time.time() * 1000)
    frames = [(t0 + i * 500, jpeg((40, 40 + 8 * i, 160), f"F{i}")) for i in range(21)]
    box = {"class": "rat", "score": 0.9, "xyxy": [20.0, 20.0, 200.0, 200.0]}
    clip = encode_clip(jpeg_images(frames), 2.0, boxes=[box], box_ts=t0 + 5000)
    sha = vigil.evidence.put_clip(clip.webm)
    snapshot = vigil.evidence.put(frames[10][1])
    v = violation(vigil.site, "KITCHEN_RODENT", source="cam-clip")
    evidence = {
        "snapshot_sha256": snapshot,
        "frame_ts": t0 + 5000,
        "boxes": [box],
        "clip_sha256": sha,
        "clip_duration_s": clip.duration_ms / 1000,
        "clip_frames": clip.frames,
        "clip_truncated": False,
    }
    v = dataclasses.replace(v, evidence=evidence)
    await publish(vigil.settings, v)
    deadline = time.monotonic() + 30
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM alerts WHERE alert_id = %s", (v.violation_id,))
            if await cur.fetchone() is not None:
                break
        assert time.monotonic() < deadline, "the alert was not stored"
        await asyncio.sleep(0.2)

    operator = await pages.new("operator", lang="en")
    await _sign_in(operator, f"{vigil.url}/dashboard/", vigil.operator_key, "operator")
    await operator.goto(f"{vigil.url}/dashboard/#/alert/{v.violation_id}")
    video = operator.get_by_test_id("evidence-clip")
    await operator.wait_for_function(DURATION, timeout=20_000)
    duration = await video.evaluate("v => v.duration")
    assert 9 <= duration <= 12, duration
    assert not pages.csp_violations(), pages.csp_violations()

    enterprise = await pages.new("enterprise", lang="en")
    await _sign_in(enterprise, f"{vigil.url}/dashboard/", vigil.enterprise_key, "enterprise")
    await enterprise.goto(f"{vigil.url}/dashboard/enterprise#/alert/{v.violation_id}")
    await enterprise.wait_for_function(DURATION, timeout=20_000)


async def test_the_live_button_shows_the_camera_until_closed(vigil: Running, pages: Pages, pool: Any) -> None:
    v = violation(vigil.site, "KITCHEN_RODENT", source="cam-live")
    await publish(vigil.settings, v)
    with MjpegServer(KitchenScene(), fps=8) as stream:
        await register_camera(
            pool, enterprise_id=vigil.site.enterprise_id, site_id=vigil.site.site_id,
            camera_id=v.source_id, source=stream.url, sample_fps=4,
        )  # fmt: skip
        try:
            async with CameraIngest(vigil.settings, serve_http=False) as ingest:
                assert ingest.live is not None
                operator = await pages.new("operator", lang="en")
                await _sign_in(operator, f"{vigil.url}/dashboard/", vigil.operator_key, "operator")
                await operator.goto(f"{vigil.url}/dashboard/#/alert/{v.violation_id}")
                await operator.get_by_test_id("live-button").click()
                await operator.wait_for_function(FRAMES, timeout=20_000)
                await operator.wait_for_function(
                    "() => document.querySelector('[data-testid=live-view]')?.naturalWidth > 0"
                )
                await operator.get_by_test_id("live-close").click()
                await expect(operator.get_by_test_id("live-dialog")).to_have_count(0)
                # The viewer went: within seconds camera ingest publishes nothing more.
                deadline = time.monotonic() + 8
                last, quiet_since = ingest.live.published, time.monotonic()
                while time.monotonic() - quiet_since < 2:
                    await asyncio.sleep(0.1)
                    if ingest.live.published != last:
                        last, quiet_since = ingest.live.published, time.monotonic()
                    assert time.monotonic() < deadline, "live frames kept flowing after the dialog closed"
                assert not pages.csp_violations(), pages.csp_violations()
        finally:
            async with pool.connection() as conn:
                await conn.execute("UPDATE cameras SET enabled = false WHERE camera_id = %s", (v.source_id,))
