"""The wall's live thumbnails in a real browser, against a running Vigil with camera ingest: a camera
alert's camera shows live frames on the wall; on leaving the wall, and when the alert is dismissed,
the thumbnail goes and within seconds camera ingest stops publishing the camera's frames (its last
viewer left)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from ingest.camera.service import CameraIngest
from simulators.camera import KitchenScene
from simulators.mjpeg import MjpegServer
from tests.browser.conftest import Pages
from tests.browser.running import Running, publish
from tests.lifecycle import violation
from vigil.cameras import register_camera

pytestmark = pytest.mark.integration

FRAMES = "() => Number(document.querySelector('[data-testid=wall-thumb]')?.dataset.frames ?? 0) >= 3"


async def _stored(pool: Any, alert_id: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM alerts WHERE alert_id = %s", (alert_id,))
            if await cur.fetchone() is not None:
                return
        assert time.monotonic() < deadline, "the alert was not stored"
        await asyncio.sleep(0.2)


async def _quiet(ingest: CameraIngest, when: str) -> None:
    """The wall was the only viewer: within seconds camera ingest publishes nothing more."""
    assert ingest.live is not None
    deadline = time.monotonic() + 8
    last, quiet_since = ingest.live.published, time.monotonic()
    while time.monotonic() - quiet_since < 2:
        await asyncio.sleep(0.1)
        if ingest.live.published != last:
            last, quiet_since = ingest.live.published, time.monotonic()
        assert time.monotonic() < deadline, f"live frames kept flowing {when}"


async def test_a_camera_alert_shows_live_on_the_wall_until_it_closes(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    v = violation(vigil.site, "KITCHEN_RODENT", source="cam-thumb")
    await publish(vigil.settings, v)
    await _stored(pool, v.violation_id)
    with MjpegServer(KitchenScene(), fps=8) as stream:
        await register_camera(
            pool, enterprise_id=vigil.site.enterprise_id, site_id=vigil.site.site_id,
            camera_id=v.source_id, source=stream.url, sample_fps=4,
        )  # fmt: skip
        try:
            async with CameraIngest(vigil.settings, serve_http=False) as ingest:
                assert ingest.live is not None
                page = await pages.new("operator")
                await page.goto(f"{vigil.url}/dashboard/#/wall")
                await page.get_by_label("接口密钥").fill(vigil.operator_key)
                await page.get_by_role("button", name="登录").click()
                thumb = page.locator(f"[data-testid=wall-thumb][data-camera-id='{v.source_id}']")
                await page.wait_for_function(FRAMES, timeout=20_000)
                await expect(thumb).to_be_visible()
                assert await thumb.evaluate("f => f.querySelector('img').naturalWidth > 0")

                # Another view: the wall's streams end with it; back on the wall they start again.
                await page.get_by_role("link", name="站点", exact=True).click()
                await expect(thumb).to_have_count(0)
                await _quiet(ingest, "after leaving the wall")
                await page.get_by_role("link", name="告警大屏", exact=True).click()
                await page.wait_for_function(FRAMES, timeout=20_000)

                async with httpx.AsyncClient(base_url=vigil.url) as http:
                    r = await http.post(
                        f"/api/v1/alerts/{v.violation_id}/dismiss",
                        json={"reason": "a toy rat left on the counter"},
                        headers={"Authorization": f"Bearer {vigil.operator_key}"},
                    )
                    assert r.status_code == 200, r.text
                await expect(thumb).to_have_count(0)
                await _quiet(ingest, "after the alert closed")
                assert not pages.csp_violations(), pages.csp_violations()
        finally:
            async with pool.connection() as conn:
                await conn.execute("UPDATE cameras SET enabled = false WHERE camera_id = %s", (v.source_id,))
