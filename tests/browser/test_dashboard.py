"""The dashboard in a real browser (in English: the Chinese pages are
tests/browser/test_wall.py's) against a running Vigil: the real API (uvicorn on a free port),
the real alerts service and notifier, the session's embedded Kafka, MQTT and PostgreSQL.

An operator signs in; a tier-1 violation published on `vigil.violations.v1` appears on the wall
without a reload and flashes until the operator acknowledges it; the enterprise (a second browser
context, its own key) reads the notice and submits a rectification with a photo; the operator sees
it in the review queue and verifies it; the alert is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from ingest.partitions import create_partitions, partitioning
from ingest.storage import write_rows
from tests.browser.conftest import Pages
from tests.browser.running import Running, jpeg, publish
from tests.lifecycle import open_alert, violation
from vigil.events import Violation, violation_id

pytestmark = pytest.mark.integration

# Device text is hostile until shown otherwise: it must reach the page as text, never as markup.
HOSTILE = '<img src=x onerror="window.__pwned=1"> rat by the sink'


async def _wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.1)


async def _sign_in(page: Page, url: str, key: str, role: str) -> None:
    await page.goto(url)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("role")).to_contain_text(role)


async def test_violation_to_closed_alert_through_the_dashboard(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    started = time.monotonic()
    snapshot = vigil.evidence.put(jpeg((40, 40, 160), "RAT"))
    v = violation(vigil.site, "KITCHEN_RODENT", source="cam-wall")
    v = dataclasses.replace(v, summary=HOSTILE, evidence={"snapshot_sha256": snapshot, "score": 0.93})

    # --- the operator signs in; `/` leads to the dashboard, and the stream goes live ----------
    operator = await pages.new("operator", lang="en")
    await _sign_in(operator, f"{vigil.url}/", vigil.operator_key, "operator")
    assert operator.url.startswith(f"{vigil.url}/dashboard/")
    await expect(operator.locator("#live")).to_have_attribute("data-state", "live")
    await expect(operator.get_by_test_id("wall-count")).to_contain_text("active")
    await operator.evaluate("window.__sameDocument = true")

    # --- a violation on Kafka appears on the wall without a reload ----------------------------
    await publish(vigil.settings, v)
    card = operator.locator(f'[data-testid="alert-card"][data-alert-id="{v.violation_id}"]')
    await expect(card).to_be_visible(timeout=30_000)
    assert await operator.evaluate("window.__sameDocument === true"), "the page reloaded"
    await expect(card).to_have_attribute("data-tier", "1")
    # People read the summary rendered from the code's template; the device's own text reaches the
    # page only as text (in the audit trail below), never as markup.
    await expect(card.get_by_test_id("summary")).not_to_be_empty()
    assert await card.locator("img").count() == 0 and not await operator.evaluate("window.__pwned")
    await expect(card.locator(".badge.tier-1").first).to_have_text("URGENT")
    # Tier 1, not yet acknowledged: it flashes until an operator takes it.
    await expect(card).to_have_class(_has("unacked"))
    # to_have_css retries: the wall may re-render the card as other changes stream in.
    await expect(card).to_have_css("animation-name", "vigil-flash")

    await card.get_by_test_id("ack").click()
    await expect(card.get_by_test_id("acked")).to_contain_text("operator:")
    await expect(card).not_to_have_class(_has("unacked"))
    await expect(card).to_have_css("animation-name", "none")

    # --- the detail: evidence snapshot fetched with the bearer header, audit, notice ------------
    await card.get_by_role("link", name="Open").click()
    await expect(operator.get_by_test_id("detail-summary")).not_to_be_empty()
    await expect(operator.get_by_test_id("audit")).to_contain_text(HOSTILE)
    assert not await operator.evaluate("window.__pwned")
    evidence = operator.get_by_test_id("evidence-image")
    await expect(evidence).to_have_attribute("src", _starts("blob:"))
    await operator.wait_for_function(
        "() => document.querySelector('[data-testid=evidence-image]')?.naturalWidth === 320"
    )
    await expect(operator.get_by_test_id("audit")).to_contain_text("operator acknowledged")
    await expect(operator.get_by_test_id("notice-row").first).to_contain_text("opened")

    # --- the enterprise reads its notice and submits a rectification with a photo --------------
    enterprise = await pages.new("enterprise", lang="en")
    await _sign_in(enterprise, f"{vigil.url}/dashboard/", vigil.enterprise_key, "enterprise")
    assert enterprise.url.endswith("/dashboard/enterprise")  # the role picks the page
    notice = enterprise.locator(f'[data-testid="notice"][data-alert-id="{v.violation_id}"]')
    await expect(notice.get_by_test_id("notice-summary")).not_to_be_empty()
    await expect(notice.get_by_test_id("read-state")).to_have_text("unread")
    await notice.get_by_test_id("mark-read").click()
    await expect(notice.get_by_test_id("read-state")).to_contain_text("read ")
    await notice.get_by_test_id("open-alert").click()
    form = enterprise.get_by_test_id("rectification-form")
    await form.get_by_label("What was done").fill("Sealed the gap under the sink; pest control visited.")
    await form.get_by_label("Photos").set_input_files(
        [{"name": "sink.jpg", "mimeType": "image/jpeg", "buffer": jpeg((20, 120, 20), "FIXED")}]
    )
    await form.get_by_role("button", name="Submit rectification").click()
    await expect(enterprise.get_by_test_id("status").first).to_have_text("Rectification submitted")
    await expect(enterprise.get_by_test_id("rectification-photo")).to_have_attribute("src", _starts("blob:"))

    # The operator's open detail follows the change live; the read receipt is on it.
    await expect(operator.get_by_test_id("status").first).to_have_text("Rectification submitted")
    await expect(operator.get_by_test_id("notice-read").first).not_to_have_text("unread")

    # --- the operator reviews it from the queue and verifies -----------------------------------
    await operator.locator("#nav").get_by_role("link", name="Rectification review").click()
    item = operator.locator(f'[data-testid="review-item"][data-alert-id="{v.violation_id}"]')
    await expect(item).to_contain_text("Sealed the gap under the sink")
    await expect(item.get_by_test_id("review-after-photo")).to_have_attribute("src", _starts("blob:"))
    await item.get_by_role("link", name="Review / reject").click()
    await operator.wait_for_function(
        "() => document.querySelector('[data-testid=rectification-photo]')?.naturalWidth === 320"
    )
    await operator.locator('button[data-action="verify"]').click()
    await operator.get_by_test_id("form-verify").get_by_role("button", name="Verify and close").click()
    await expect(operator.get_by_test_id("status").first).to_have_text("Closed")
    await expect(operator.get_by_test_id("audit")).to_contain_text("verified")

    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, disposition FROM alerts WHERE alert_id = %s", (v.violation_id,)
        )
        # A rat is never a first-offence warning; rectified in time, it closes as corrected.
        assert await cur.fetchone() == ("closed", "corrected")

    # The wall no longer shows it; sites and trends render (charts under the strict CSP).
    await operator.locator("#nav").get_by_role("link", name="Alert wall").click()
    await expect(operator.get_by_test_id("wall-count")).to_contain_text("active")
    await expect(card).to_have_count(0)
    await operator.locator("#nav").get_by_role("link", name="Sites").click()
    site_card = operator.locator(f'[data-testid="site-card"][data-site-id="{vigil.site.site_id}"]')
    await expect(site_card).to_contain_text("Open alerts: 0")
    await operator.locator("#nav").get_by_role("link", name="Trends").click()
    await expect(operator.get_by_test_id("trend-counts").locator("canvas")).to_have_count(1)
    await expect(operator.get_by_test_id("trend-table")).to_contain_text("Violations")

    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()
    print(f"browser scenario: {time.monotonic() - started:.1f}s")


def _has(css_class: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")


def _starts(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}")


async def test_the_wall_resumes_after_the_stream_is_cut(vigil: Running, pages: Pages, pool: Any) -> None:
    """The API goes away mid-stream; a violation arrives while it is down; when it is back the
    browser reconnects with its Last-Event-ID and the missed change reaches the wall, no reload."""
    operator = await pages.new("operator", lang="en")
    stream_requests: list[Any] = []

    def record(request: Any) -> None:
        if "/api/v1/stream" in request.url:
            stream_requests.append(request)

    operator.on("request", record)
    await _sign_in(operator, f"{vigil.url}/dashboard/", vigil.operator_key, "operator")
    live = operator.locator("#live")
    await expect(live).to_have_attribute("data-state", "live")
    await expect(operator.get_by_test_id("wall-count")).to_contain_text("active")
    await operator.evaluate("window.__sameDocument = true")
    missed = violation(vigil.site, "KITCHEN_NO_MASK", source="cam-gap")

    async def while_down() -> None:
        await expect(live).to_have_attribute("data-state", "reconnecting")
        await publish(vigil.settings, missed)

        async def published() -> bool:  # on vigil.alerts.v1 before the API comes back
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM outbox WHERE alert_id = %s AND channel = 'alert_stream'"
                    " AND delivered_at IS NOT NULL",
                    (missed.violation_id,),
                )
                row = await cur.fetchone()
                return bool(row and row[0] >= 1)

        await _wait_until(published, "the missed change published")

    await vigil.restart_api(while_down)
    card = operator.locator(f'[data-testid="alert-card"][data-alert-id="{missed.violation_id}"]')
    await expect(card).to_be_visible(timeout=30_000)
    await expect(live).to_have_attribute("data-state", "live")
    assert await operator.evaluate("window.__sameDocument === true"), "the page reloaded"
    first, *later = [await r.all_headers() for r in stream_requests]
    assert "last-event-id" not in first
    assert later and all(re.fullmatch(r"\d+:\d+(,\d+:\d+)*", h.get("last-event-id", "")) for h in later)
    assert all(h["authorization"].startswith("Bearer vt_") for h in [first, *later])
    assert not pages.errors, pages.errors


async def test_a_telemetry_alert_shows_its_sensor_trace(vigil: Running, pages: Pages, pool: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    device = f"freezer-{vigil.site.site_id}"
    start_ms = int((now - timedelta(minutes=5)).timestamp() * 1000)
    v = Violation(
        violation_id=violation_id("device", device, "COLD_CHAIN_FREEZER_WARM", start_ms),
        code="COLD_CHAIN_FREEZER_WARM", state="active", enterprise_id=vigil.site.enterprise_id,
        site_id=vigil.site.site_id, source_kind="device", source_id=device, window_start=start_ms,
        detected_at=start_ms, severity="major", detector="cold-chain", summary="Freezer at -9.5 °C",
        evidence={"metric": "temperature", "value": -9.5, "min_c": None, "max_c": -18.0},
    )  # fmt: skip
    await open_alert(pool, v)
    readings = [
        (device, vigil.site.enterprise_id, now - timedelta(seconds=10 * i), metric, value)
        for i in range(60)
        for metric, value in (("temperature", -20.0 + (60 - i) * 0.2), ("humidity", 60.0 + i % 5))
    ]
    async with pool.connection() as conn:
        if await partitioning(conn) == "native":
            await create_partitions(conn, {r[2].date() for r in readings})
    await write_rows(pool, readings)

    operator = await pages.new("operator", lang="en")
    await _sign_in(operator, f"{vigil.url}/dashboard/", vigil.operator_key, "operator")
    await operator.goto(f"{vigil.url}/dashboard/#/alert/{v.violation_id}")
    await expect(operator.get_by_test_id("detail-summary")).to_contain_text("-18")
    chart = operator.get_by_test_id("trace-chart")
    await expect(chart.locator("canvas")).to_have_count(1)
    legend = chart.locator(".u-legend")
    for label in ("temperature", "humidity", "temperature max"):
        await expect(legend).to_contain_text(label)
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()


async def test_sign_in_refuses_a_bad_key_keeps_no_key_and_signs_out(vigil: Running, pages: Pages) -> None:
    page = await pages.new("operator", lang="en")
    await page.goto(f"{vigil.url}/dashboard/")
    await page.get_by_label("API key").fill("vigil_not-a-real-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#login-error")).to_contain_text("not valid")
    await _sign_in(page, f"{vigil.url}/dashboard/", vigil.operator_key, "operator")
    stored = await page.evaluate("JSON.stringify(sessionStorage)")
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('vigil.session')).token")
    assert vigil.operator_key not in stored and token.startswith("vt_")  # the session token only
    assert await page.get_by_label("API key").input_value() == ""
    # A reload keeps the session (this tab); signing out ends it and closes the stream.
    await page.reload()
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await expect(page.locator("#live")).to_have_attribute("data-state", "off")
    # Signed out on the server too: the token no longer works anywhere, not only in this tab.
    async with httpx.AsyncClient(base_url=vigil.url, timeout=10) as c:
        me = await c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    assert not pages.errors, pages.errors
