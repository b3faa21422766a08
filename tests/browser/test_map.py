"""The site map (issue 19.1) in Debian's Chromium against a running Vigil: one marker per placed
site (single markers plus the counts of the clusters they are grouped in) on the sample district
GeoJSON with its district polygons drawn, each coloured by its worst open alert; the wall's compact
map panel; not one request to any host but this one (a closed government network); and the page
in zh-CN without English UI text and no wider than a 390 px phone. Screenshots of the map page are
kept under the screenshot folder (printed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.api.conftest import Seeder
from tests.browser.conftest import ARTIFACTS, Pages
from tests.browser.running import Running
from tests.browser.test_wall import check_page

pytestmark = pytest.mark.integration

# Inside the sample district (api/static/geo/demo-district.geojson), tier of the worst open alert;
# and two sites at the world's corners (mistyped coordinates, as the API's fuzzing test also places):
# the maps widen their frame to show them, and the wall's 200 px panel must still show every site.
PLACES = [
    (31.205, 121.428, 1),
    (31.200, 121.410, 2),
    (31.222, 121.420, 3),
    (31.209, 121.436, None),
    (-90, 180, None),
    (90, -180, None),
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

_MARKERS = """(box) => {
  const root = document.querySelector(box);
  const single = root.querySelectorAll('.leaflet-marker-icon.site-marker').length;
  const clustered = [...root.querySelectorAll('.leaflet-marker-icon.site-cluster')]
    .reduce((n, c) => n + Number(c.textContent), 0);
  const tiers = [...root.querySelectorAll('.site-marker, .site-cluster')]
    .map((m) => [...m.classList].find((c) => c.startsWith('tier-')));
  return { single, clustered, tiers, districts: root.querySelectorAll('path.district').length };
}"""


# What a map that did not settle shows: its markers, box size and the sites it loaded.
_SEEN = f"""(box) => {{
  const root = document.querySelector(box);
  if (!root) return 'no such box';
  const size = {{ width: root.clientWidth, height: root.clientHeight, loaded: root.dataset.sites }};
  return {{ ...({_MARKERS})(box), ...size }};
}}"""


async def _place_sites(pool: Any, vigil: Running) -> list[str]:
    """The test's own sites (the running Vigil's staffed one and five more), placed and alerted."""
    site, seed = vigil.site, Seeder(pool, vigil.site.site_id)
    ids = [site.site_id] + [f"{site.site_id}-{n}" for n in range(1, len(PLACES))]
    async with pool.connection() as conn, conn.transaction():
        for n, (site_id, (lat, lon, _)) in enumerate(zip(ids, PLACES, strict=True)):
            await conn.execute(
                "INSERT INTO sites (site_id, enterprise_id, name, district)"
                " VALUES (%s, %s, %s, '示例区·中片')"
                " ON CONFLICT (site_id) DO UPDATE SET name = EXCLUDED.name",
                (site_id, site.enterprise_id, f"示例后厨{n}"),
            )
            await conn.execute(
                "UPDATE sites SET latitude = %s, longitude = %s WHERE site_id = %s", (lat, lon, site_id)
            )
    now = datetime.now(UTC)
    for n, (site_id, (_, _, tier)) in enumerate(zip(ids, PLACES, strict=True)):
        if tier is not None:
            await seed.alert(n, created_at=now, tier=tier, enterprise=site.enterprise_id, site=site_id)
    return ids


async def _placed_sites(pool: Any) -> int:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM sites WHERE latitude IS NOT NULL")).fetchone()
    return int(row[0])


async def _offline_only(page: Page, external: list[str]) -> None:
    """Every request to a host other than this machine is refused and recorded."""

    async def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            await route.continue_()
        else:
            external.append(route.request.url)
            await route.abort()

    await page.context.route("**/*", guard)


async def _sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(url)
    await page.get_by_label("接口密钥").fill(key)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")


async def _settled(page: Page, box: str, expected: int) -> dict[str, Any]:
    """The markers once Leaflet has drawn them all (clusters animate into place)."""
    try:
        await page.wait_for_function(
            f"() => ({_MARKERS})({box!r}).single + ({_MARKERS})({box!r}).clustered === {expected}",
            timeout=15_000,
        )
    except PlaywrightTimeout:
        seen = await page.evaluate(_SEEN, box)
        raise AssertionError(f"{box}: {expected} sites expected within 15 s; the map shows {seen}") from None
    await page.wait_for_timeout(400)
    drawn: dict[str, Any] = await page.evaluate(_MARKERS, box)
    return drawn


async def test_the_map_page_draws_every_site_on_the_districts_offline(
    vigil: Running, pages: Pages, pool: Any
) -> None:
    await _place_sites(pool, vigil)
    expected = await _placed_sites(pool)  # ours, and any other test's placed sites in this database
    external: list[str] = []
    base = f"{vigil.url}/dashboard/"

    page = await pages.new("map", width=1280, height=900)
    await _offline_only(page, external)
    await _sign_in(page, base, vigil.operator_key)
    await page.get_by_role("link", name="地图", exact=True).click()
    await expect(page.get_by_role("heading", name="站点地图")).to_be_visible()
    drawn = await _settled(page, "[data-testid=site-map]", expected)
    assert drawn["single"] + drawn["clustered"] == expected, drawn
    assert drawn["districts"] == 3, drawn  # the sample's three districts, one path each
    assert "tier-1" in drawn["tiers"], drawn  # a red site (or a cluster holding it) is never hidden
    await expect(page.get_by_test_id("map-summary")).to_contain_text(f"{expected} 个站点")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "map-page-1280.png"
    await page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    await check_page(page, "map page")

    # Zoomed out, nearby sites are grouped: the clusters' counts still add up to every site.
    # Other tests' sites may already have the map at its widest: zoom out only while Leaflet can.
    zoom_out, zoomed = page.get_by_role("button", name="缩小"), 0
    for _ in range(4):
        if await zoom_out.get_attribute("aria-disabled") == "true":
            break
        await zoom_out.click()
        zoomed += 1
        await page.wait_for_timeout(300)
    zoomed_out = await _settled(page, "[data-testid=site-map]", expected)
    assert zoomed_out["clustered"] >= 2, zoomed_out
    assert "tier-1" in zoomed_out["tiers"], zoomed_out  # a cluster takes its most urgent site's colour
    await page.screenshot(path=str(ARTIFACTS / "map-page-clustered.png"))
    for _ in range(zoomed):  # back to where the map started
        await page.get_by_role("button", name="放大").click()
        await page.wait_for_timeout(300)
    await _settled(page, "[data-testid=site-map]", expected)

    # A single marker opens its site's card, which links to the wall filtered by that site.
    single = page.locator("[data-testid=site-map] .site-marker").first
    if await single.count():
        await single.click()
        popup = page.get_by_test_id("map-popup")
        await expect(popup).to_be_visible()
        # Leaflet pans a card at the map's edge into view (0.25 s): a click during the pan can miss.
        await page.wait_for_timeout(500)
        await popup.get_by_test_id("map-site-alerts").click()
        await expect(page.get_by_test_id("filter-site")).to_be_visible()
        assert "site=" in page.url

    # The wall's compact panel: the same districts and markers.
    await page.goto(f"{base}#/wall")
    panel = await _settled(page, "[data-testid=wall-site-map]", expected)
    assert panel["districts"] == 3, panel
    await page.screenshot(path=str(ARTIFACTS / "map-wall-panel.png"))

    # A phone: in Chinese, nothing wider than the screen.
    phone = await pages.new("map-phone", width=390, height=844)
    await _offline_only(phone, external)
    await _sign_in(phone, f"{base}#/map", vigil.operator_key)
    await phone.goto(f"{base}#/map")
    await _settled(phone, "[data-testid=site-map]", expected)
    await check_page(phone, "map page at 390 px")
    shot = ARTIFACTS / "map-page-390.png"
    await phone.screenshot(path=str(shot))
    print(f"screenshot: {shot}")

    assert not external, f"requests left for other hosts: {external}"
    assert not pages.errors, pages.errors
    assert not pages.csp_violations(), pages.csp_violations()
