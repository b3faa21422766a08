"""The dashboard as a Chinese operator and a Chinese enterprise see it (issue 18), in Debian's
Chromium against a running Vigil: every page in zh-CN without English UI text, no page wider than a
phone from 360 to 414 px, the command-centre wall (compact mode, filters and search in the address,
the tier-1 alarm), the English switch, and a 50 MP phone photo scaled down before upload.

The untranslated-text walk reads every visible text node (and placeholder) of the page, outside
elements marked `translate="no"` (what is data, not the dashboard's words: ids, codes, names,
what people typed, a detector's own summary) and `<code>`, and fails on any word of three or more
ASCII letters that is not allow-listed (units, formats, product names). Screenshots of the wall
at 1920×1080 and of a phone are kept under the screenshot folder (printed).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
from playwright.async_api import Page, expect

from ingest.partitions import create_partitions, partitioning
from ingest.storage import write_rows
from tests.browser.conftest import ARTIFACTS, Pages
from tests.browser.running import Running, jpeg, publish
from tests.lifecycle import open_alert, submit, violation
from vigil.cameras import register_camera
from vigil.events import Violation, violation_id

pytestmark = pytest.mark.integration

# Words of three or more ASCII letters a Chinese page may show: units, file formats, the product.
ALLOWED = {"Vigil", "English", "JPEG", "PNG", "CSV", "Excel", "MiB", "MQTT", "ppm", "MPa", "LEL"}
WALL = (1920, 1080)
PHONES = [(390, 844), (360, 740), (414, 896)]

_COLLECT = """() => {
  const out = [];
  const skip = (el) => el.closest(
    '[translate="no"], code, script, style, noscript, option, select, .u-legend .u-value');
  const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })
    && el.getClientRects().length > 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || !n.textContent.trim() || skip(el) || !shown(el)) continue;
    out.push(n.textContent.trim());
  }
  for (const el of document.querySelectorAll('[placeholder]')) {
    if (!skip(el) && shown(el)) out.push(el.getAttribute('placeholder'));
  }
  return out;
}"""


def english_words(texts: list[str]) -> list[str]:
    """Words of ≥ 3 ASCII letters that are not ids or codes (no digit, `_`, `-`, `:`, `.`, `/`)."""
    found = []
    for text in texts:
        for token in re.findall(r"[A-Za-z0-9_\-:./@…]+", text):
            if (
                re.search(r"[A-Za-z]{3,}", token)
                and not re.search(r"[0-9_\-:./@…]", token)
                and token not in ALLOWED
            ):
                found.append(f"{token!r} in {text!r}")
    return found


def test_the_walk_flags_english_and_lets_ids_codes_and_units_through() -> None:
    assert english_words(
        ["告警大屏", "Alert wall", "KITCHEN_RODENT", "cam-1", "-18 ℃", "JPEG", "2026-12-07 20:51"]
    ) == [
        "'Alert' in 'Alert wall'",
        "'wall' in 'Alert wall'",
    ]


async def check_page(page: Page, what: str) -> None:
    """No English UI text; not wider than the window."""
    # The live stream keeps a request open: wait for the view to have rendered instead.
    await page.wait_for_function(
        "() => document.querySelector('#view, #login:not([hidden])')?.childElementCount > 0"
        " && !document.body.innerText.includes('加载中')",
        timeout=15_000,
    )
    await page.wait_for_timeout(300)
    texts = await page.evaluate(_COLLECT)
    assert texts, f"{what}: no text found"
    english = english_words(texts)
    assert not english, f"{what}: English UI text: {english}"
    width = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], (
        f"{what}: {width[0]} px wide in a {width[1]} px window; too wide: {await _too_wide(page)}"
    )


async def _sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await page.get_by_label("接口密钥").fill(key)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")


async def _chinese_names(pool: Any, vigil: Running) -> None:
    site = vigil.site
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE enterprises SET name = '老王面馆' WHERE enterprise_id = %s", (site.enterprise_id,)
        )
        await conn.execute(
            "UPDATE sites SET name = '后厨', district = '徐汇区' WHERE site_id = %s", (site.site_id,)
        )
        for slot, staff_id in site.staff.items():
            await conn.execute("UPDATE staff SET name = %s WHERE staff_id = %s", (f"处置人{slot}", staff_id))


def _big_photo() -> bytes:
    """A 50 MP (8160 × 6120) JPEG of over 5 MiB, as a phone takes it: the API alone refuses it."""
    h, w = 6120, 8160
    gradient = np.linspace(0, 200, w, dtype=np.float32)[None, :, None]
    rng = np.random.default_rng(1)
    image = np.clip(gradient + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = bytes(encoded.tobytes())
    assert len(data) > 5 * 1024 * 1024
    return data


async def test_every_page_in_chinese_on_the_wall_and_on_phones(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    await _chinese_names(pool, vigil)
    site = vigil.site
    # A camera id as long as ids may be, with no place to break: it must wrap, not widen the page.
    long_camera = "cam-" + "x" * 60
    await register_camera(
        pool, enterprise_id=site.enterprise_id, site_id=site.site_id, camera_id=long_camera,
        source="push", sample_fps=1.0, zones=[], enabled=True,
    )  # fmt: skip
    snapshot = vigil.evidence.put(jpeg((40, 40, 160), "RAT"))
    now = datetime.now(UTC).replace(microsecond=0)
    # Its alert card shows that id too (on the wall, in the alert, in a notice).
    rat = dataclasses.replace(
        violation(site, "KITCHEN_RODENT", source=long_camera, at=now - timedelta(minutes=3)),
        evidence={"snapshot_sha256": snapshot, "score": 0.93},
    )
    await open_alert(pool, rat)
    reviewed = dataclasses.replace(
        violation(site, "KITCHEN_NO_MASK", source="cam-b", at=now - timedelta(minutes=20)),
        evidence={"snapshot_sha256": snapshot},
    )
    await open_alert(pool, reviewed)
    await submit(pool, site, reviewed.violation_id, "已更换口罩")
    device = f"freezer-{site.site_id}"
    start_ms = int((now - timedelta(minutes=5)).timestamp() * 1000)
    cold = Violation(
        violation_id=violation_id("device", device, "COLD_CHAIN_FREEZER_WARM", start_ms),
        code="COLD_CHAIN_FREEZER_WARM", state="active", enterprise_id=site.enterprise_id,
        site_id=site.site_id,
        source_kind="device", source_id=device, window_start=start_ms, detected_at=start_ms, severity="major",
        detector="cold-chain", summary="Freezer at -9.5 °C",
        evidence={"metric": "temperature", "value": -9.5, "min_c": None, "max_c": -18.0},
    )  # fmt: skip
    await open_alert(pool, cold)
    # Whatever a client names its device (here 240 characters with no place to break), the card
    # wraps it: the wall at 1920 px and a phone at 360 px stay as wide as the window.
    await open_alert(
        pool, violation(site, "KITCHEN_SMOKING", source="dev-" + "0" * 240, at=now - timedelta(minutes=4))
    )
    readings = [
        (device, site.enterprise_id, now - timedelta(seconds=10 * i), metric, value)
        for i in range(60)
        for metric, value in (("temperature", -20.0 + (60 - i) * 0.2), ("humidity", 60.0 + i % 5))
    ]
    async with pool.connection() as conn:
        if await partitioning(conn) == "native":
            await create_partitions(conn, {r[2].date() for r in readings})
    await write_rows(pool, readings)
    # Enough alerts that the compact wall has to show 25 at once.
    for i in range(28):
        await open_alert(
            pool, violation(site, "KITCHEN_SMOKING", source=f"cam-n{i}", at=now - timedelta(minutes=30 + i))
        )

    base = f"{vigil.url}/dashboard/"
    operator_views = [
        "#/wall", "#/wall?compact=1", f"#/alert/{rat.violation_id}", f"#/alert/{cold.violation_id}",
        "#/review", "#/sites", "#/trends",
    ]  # fmt: skip
    enterprise_views = ["#/notices", f"#/alert/{rat.violation_id}"]

    # --- the wall at 1920 × 1080: full width, compact shows ≥ 25 alerts ------------------------
    wall = await pages.new("wall", width=WALL[0], height=WALL[1])
    await wall.goto(base)
    await check_page(wall, "sign-in page")
    await _sign_in(wall, base, vigil.operator_key)
    await expect(wall.get_by_test_id("kpi-open")).to_be_visible()
    rat_card = wall.locator(f'[data-testid="alert-card"][data-alert-id="{rat.violation_id}"]')
    await expect(rat_card).to_be_visible()
    assert await wall.get_by_test_id("alert-card").count() >= 31  # ours, and other tests' in this database
    box = await wall.get_by_test_id("wall").bounding_box()
    assert box and box["width"] > 0.75 * WALL[0], box
    await wall.get_by_test_id("wall-compact").click()
    assert "compact=1" in wall.url
    fully_visible = await wall.evaluate(
        "[...document.querySelectorAll('[data-testid=alert-card]')]"
        ".filter((c) => { const r = c.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= innerHeight; }).length"
    )
    assert fully_visible >= 25, fully_visible
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await wall.screenshot(path=str(ARTIFACTS / "wall-zh-CN-1920x1080.png"))
    await wall.get_by_test_id("wall-compact").click()
    await wall.screenshot(path=str(ARTIFACTS / "wall-zh-CN-1920x1080-comfortable.png"))
    for view in operator_views:
        await wall.goto(base + view)
        await check_page(wall, f"operator {view} at 1920")

    # Review: the original evidence (整改前) beside the rectification (整改后).
    await wall.goto(base + "#/review")
    item = wall.locator(f'[data-testid="review-item"][data-alert-id="{reviewed.violation_id}"]')
    await expect(item.get_by_test_id("review-before")).to_contain_text("整改前")
    await expect(item.get_by_test_id("review-after")).to_contain_text("整改后")
    await expect(item.get_by_test_id("review-before-photo")).to_have_attribute("src", re.compile("^blob:"))
    # The sensor chart: one axis per unit, the limit drawn, 24-hour times.
    await wall.goto(base + f"#/alert/{cold.violation_id}")
    legend = wall.get_by_test_id("trace-chart").locator(".u-legend")
    for label in ("温度 (℃)", "湿度 (%)", "温度上限 (℃)"):
        await expect(legend).to_contain_text(label)
    assert await wall.get_by_test_id("trace-chart").locator(".u-axis").count() == 3  # time, ℃, %

    # --- phones: every operator and enterprise page, no horizontal overflow ----------------------
    for width, height in PHONES:
        phone = await pages.new(
            f"operator-{width}", width=width, height=height, is_mobile=True, has_touch=True
        )
        await _sign_in(phone, base, vigil.operator_key)
        for view in operator_views:
            await phone.goto(base + view)
            await check_page(phone, f"operator {view} at {width}")
        if width == 390:
            await phone.goto(base + "#/wall")
            await phone.screenshot(path=str(ARTIFACTS / "wall-zh-CN-390x844.png"))
        shop = await pages.new(
            f"enterprise-{width}", width=width, height=height, is_mobile=True, has_touch=True
        )
        await _sign_in(shop, base, vigil.enterprise_key)
        for view in enterprise_views:
            await shop.goto(f"{vigil.url}/dashboard/enterprise{view}")
            await check_page(shop, f"enterprise {view} at {width}")
        if width == 390:
            await shop.goto(f"{vigil.url}/dashboard/enterprise#/notices")
            await shop.screenshot(path=str(ARTIFACTS / "enterprise-zh-CN-390x844.png"))

    # --- a 50 MP phone photo goes through, scaled down in the browser ----------------------------
    await shop.goto(f"{vigil.url}/dashboard/enterprise#/alert/{rat.violation_id}")
    form = shop.get_by_test_id("rectification-form")
    await form.get_by_label("整改措施").fill("已封堵水槽下方缝隙，并请虫害防治公司上门处理。")
    await form.get_by_label("照片").set_input_files(
        [{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": _big_photo()}]
    )
    await form.get_by_role("button", name="提交整改").click()
    await expect(shop.get_by_test_id("status").first).to_have_text("已提交整改", timeout=60_000)
    await shop.wait_for_function(
        "() => document.querySelector('[data-testid=rectification-photo]')?.naturalWidth === 4096",
        timeout=30_000,
    )
    print(f"screenshots: {ARTIFACTS}")
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()


async def test_a_tier1_alert_sounds_and_notifies_unless_muted(vigil: Running, pages: Pages) -> None:
    page = await pages.new("wall", width=WALL[0], height=WALL[1])
    await page.context.grant_permissions(["notifications"], origin=vigil.url)
    await _sign_in(page, f"{vigil.url}/dashboard/", vigil.operator_key)
    await expect(page.get_by_test_id("wall-count")).to_contain_text("处理中")
    await page.get_by_role(
        "heading", name="告警大屏"
    ).click()  # a user gesture: the browser lets the page play sound from now on
    await expect(page.get_by_test_id("sound-state")).to_have_text("声音已开启")
    await page.evaluate(
        "window.__alarms = [];"
        " document.addEventListener('vigil:alarm', (e) => window.__alarms.push(e.detail))"
    )
    urgent = violation(vigil.site, "KITCHEN_RODENT", source="cam-alarm")
    await publish(vigil.settings, urgent)
    await page.wait_for_function("() => window.__alarms.length >= 1", timeout=30_000)
    fired = await page.evaluate("window.__alarms[0]")
    assert fired["alertId"] == urgent.violation_id and fired["sound"] is True and fired["muted"] is False, (
        fired
    )
    assert await page.evaluate("window.__vigilAlarm.sounded") >= 1

    # Muted: the alarm is still raised (and counted), silently.
    await page.get_by_test_id("wall-mute").click()
    await expect(page.get_by_test_id("wall-mute")).to_have_attribute("aria-pressed", "true")
    again = violation(vigil.site, "KITCHEN_RODENT", source="cam-alarm-2")
    await publish(vigil.settings, again)
    await page.wait_for_function("() => window.__alarms.length >= 2", timeout=30_000)
    second = await page.evaluate("window.__alarms[1]")
    assert second["alertId"] == again.violation_id and second["muted"] is True and second["sound"] is False
    assert not pages.errors, pages.errors


async def test_filters_and_search_are_kept_in_the_address(vigil: Running, pages: Pages, pool: Any) -> None:
    await _chinese_names(pool, vigil)
    urgent = violation(vigil.site, "KITCHEN_RODENT", source="cam-f1")
    routine = violation(vigil.site, "KITCHEN_SMOKING", source="cam-f2")
    for v in (urgent, routine):
        await open_alert(pool, v)
    page = await pages.new("wall", width=WALL[0], height=WALL[1])
    await _sign_in(page, f"{vigil.url}/dashboard/", vigil.operator_key)
    urgent_card = page.locator(f'[data-testid="alert-card"][data-alert-id="{urgent.violation_id}"]')
    routine_card = page.locator(f'[data-testid="alert-card"][data-alert-id="{routine.violation_id}"]')
    await expect(urgent_card).to_be_visible()
    await expect(routine_card).to_be_visible()

    await page.get_by_test_id("filter-enterprise").select_option(vigil.site.enterprise_id)
    await page.get_by_test_id("filter-code").select_option("KITCHEN_SMOKING")
    await expect(urgent_card).to_have_count(0)
    await expect(routine_card).to_be_visible()
    assert f"enterprise={vigil.site.enterprise_id}" in page.url and "code=KITCHEN_SMOKING" in page.url

    await page.get_by_test_id("filter-code").select_option("")
    await page.get_by_test_id("filter-district").select_option("徐汇区")
    await page.get_by_test_id("wall-search").fill("RODENT")  # in the detector's text, which the API searches
    await page.get_by_test_id("wall-search").press("Enter")
    await expect(routine_card).to_have_count(0)
    await expect(urgent_card).to_be_visible()
    assert "q=" in page.url and "district=" in page.url and "code=" not in page.url

    # A reload (or a bookmark) keeps the filters and the list.
    await page.reload()
    await expect(page.get_by_test_id("wall-search")).to_have_value("RODENT")
    await expect(page.get_by_test_id("filter-district")).to_have_value("徐汇区")
    await expect(urgent_card).to_be_visible()
    await expect(routine_card).to_have_count(0)

    # The export takes the wall's filters: the CSV holds the urgent alert only, with Chinese headers.
    async with page.expect_download() as saving:
        await page.get_by_test_id("export-csv").click()
    saved = await (await saving.value).path()
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert any("告警" in cell for cell in rows[0]), rows[0]
    assert len(rows) == 2 and urgent.violation_id in rows[1], rows

    await page.get_by_test_id("filter-tier").select_option("3")
    await expect(urgent_card).to_have_count(0)
    assert "tier=3" in page.url
    assert not pages.errors, pages.errors


async def test_the_english_switch_works_and_is_remembered(vigil: Running, pages: Pages) -> None:
    page = await pages.new("operator", width=390, height=844)
    await page.goto(f"{vigil.url}/dashboard/")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.locator("#login h1")).to_have_text("登录")
    await page.get_by_test_id("lang-switch").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#login h1")).to_have_text("Sign in")
    await page.get_by_label("API key").fill(vigil.operator_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("wall-count")).to_contain_text("active")
    await check_overflow_only(page)
    # Remembered in this browser: a reload and a new tab open in English.
    await page.reload()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    other = await page.context.new_page()
    await other.goto(f"{vigil.url}/dashboard/")
    await expect(other.locator("html")).to_have_attribute("lang", "en")
    await other.get_by_test_id("lang-switch").click()
    await expect(other.locator("html")).to_have_attribute("lang", "zh-CN")
    assert not pages.errors, pages.errors


async def check_overflow_only(page: Page) -> None:
    width = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], f"{width}; too wide: {await _too_wide(page)}"


# The innermost elements that reach past the window's right edge: what to fix when a page is too wide.
_TOO_WIDE = """() => [...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
  .filter((e) => ![...e.children].some((c) => c.getBoundingClientRect().right > innerWidth + 1))
  .slice(0, 5)
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}[${e.dataset.testid || ''}]`
    + ` ${Math.round(e.getBoundingClientRect().right)}px: ${(e.textContent || '').slice(0, 60)}`)"""


async def _too_wide(page: Page) -> list[str]:
    return list(await page.evaluate(_TOO_WIDE))
