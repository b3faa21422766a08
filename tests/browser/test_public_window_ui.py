"""Publishing the public kitchen window from the dashboard, in Chinese (the default), against a
running Vigil (tests/browser/running.py): a restaurant on a 390 px phone publishes its site, is
told the link is shown only once, sees the QR code load, ticks a camera, reads the history and
unpublishes; the bureau does the same from the sites page, in a dialog that the page's refreshes
cannot take away."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Pages
from tests.browser.running import Running
from vigil.cameras import register_camera

pytestmark = pytest.mark.integration

QR_LOADED = (
    "() => { const i = document.querySelector('[data-testid=pw-qr]');"
    " return !!i && i.complete && i.naturalWidth > 0 }"
)


async def _sign_in(page: Page, url: str, key: str, role: str) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before unpublishing
    await page.goto(url)
    await page.get_by_label("接口密钥").fill(key)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_test_id("role")).to_have_text(role)


async def _state(vigil: Running, key: str) -> Any:
    async with httpx.AsyncClient(base_url=vigil.url, headers={"Authorization": f"Bearer {key}"}) as http:
        r = await http.get(f"/api/v1/sites/{vigil.site.site_id}/public-window")
        assert r.status_code == 200, r.text
        return r.json()


async def test_a_restaurant_publishes_its_kitchen_on_a_phone(vigil: Running, pages: Pages, pool: Any) -> None:
    camera = f"pw-{vigil.site.site_id}"
    ent, site = vigil.site.enterprise_id, vigil.site.site_id
    await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push")
    page = await pages.new("restaurant", width=390, height=844)
    await _sign_in(page, f"{vigil.url}/dashboard/enterprise", vigil.enterprise_key, "企业")
    panel = page.get_by_test_id("public-window")
    status = panel.get_by_test_id("pw-status")
    await expect(status).to_have_text("未发布")
    box = panel.get_by_role("checkbox", name=camera)
    await expect(box).to_be_disabled()  # publish first

    await panel.get_by_role("button", name="发布", exact=True).click()
    once = panel.get_by_test_id("pw-once")
    await expect(once).to_contain_text("仅显示这一次")
    await expect(once).to_contain_text("再次发布会生成新链接")
    url = await once.get_by_test_id("pw-url").text_content()
    public = vigil.settings.public_url.rstrip("/")
    assert url and re.fullmatch(rf"{re.escape(public)}/public/w/[A-Za-z0-9_-]{{32}}", url), url
    await page.wait_for_function(QR_LOADED)
    await expect(once.get_by_role("button", name="打印二维码")).to_be_enabled()
    await expect(panel.get_by_role("button", name="重新发布")).to_be_visible()

    await box.check()
    await expect(status).to_contain_text("公开 1 个摄像头")
    state = await _state(vigil, vigil.enterprise_key)
    assert state["published"] and state["cameras"] == [camera]
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{width[0]} px wide in a {width[1]} px window"

    await panel.get_by_text("发布记录").click()
    events = panel.get_by_test_id("pw-event")
    await expect(events).to_have_count(2)
    await expect(events.first).to_contain_text(f"公开摄像头 {camera}")

    await panel.get_by_role("button", name="停止公开").click()
    await expect(status).to_have_text("未发布")
    await expect(once).to_be_hidden()
    await expect(box).not_to_be_checked()
    await expect(events).to_have_count(4)  # the camera taken off, then the link ended
    state = await _state(vigil, vigil.enterprise_key)
    assert not state["published"] and state["cameras"] == []
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()


async def test_the_bureau_publishes_a_site_from_the_sites_page(vigil: Running, pages: Pages) -> None:
    page = await pages.new("operator")
    await _sign_in(page, f"{vigil.url}/dashboard/#/sites", vigil.operator_key, "值班员")
    card = page.locator(f"[data-testid=site-card][data-site-id='{vigil.site.site_id}']")
    await card.get_by_test_id("pw-open").click()
    dialog = page.get_by_test_id("pw-dialog")
    await dialog.get_by_role("button", name="发布", exact=True).click()
    await page.wait_for_function(QR_LOADED)
    await expect(dialog.get_by_test_id("pw-once")).to_contain_text("仅显示这一次")
    assert (await _state(vigil, vigil.operator_key))["published"]
    await dialog.get_by_role("button", name="关闭").click()
    await expect(dialog).to_have_count(0)
    assert not pages.errors, pages.errors
