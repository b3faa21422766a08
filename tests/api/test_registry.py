"""Registry management over HTTP (enterprises, sites, devices, cameras, staff) and the per-site status,
against the real tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from tests.api.conftest import Seeder, bearer, make_key
from tests.lifecycle import Site

ZONE = {"name": "prep", "points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "codes": ["KITCHEN_NO_MASK"]}


@pytest.fixture
def sup(supervisor_key: str) -> dict[str, str]:
    return bearer(supervisor_key)


async def _fetch(pool: AsyncConnectionPool[Any], query: str, *params: object) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(query, params)).fetchone()
    return row[0] if row else None


async def _alert(
    pool: AsyncConnectionPool[Any],
    alert_id: str,
    *,
    site: Site | Seeder,
    kind: str,
    source: str,
    code: str,
    tier: int,
    status: str = "open",
) -> None:
    enterprise = site.enterprise_id if isinstance(site, Site) else site.enterprise
    site_id = site.site_id if isinstance(site, Site) else site.site
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, detector, window_start, first_seen, last_seen, deadline)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'minor', %s, 'seeded', 'test', %s, %s, %s, %s)",
            (alert_id, code, enterprise, site_id, kind, source, status, tier, now, now, now,
             now + timedelta(hours=24)),
        )  # fmt: skip


async def test_enterprise_round_trip_never_shows_the_webhook_secret(
    client: httpx.AsyncClient, pool, uid: str, sup: dict[str, str]
) -> None:
    ent = f"ent-{uid}"
    r = await client.put(f"/api/v1/enterprises/{ent}", json={"name": "  Noodle House  "}, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json() | {"created_at": None} == {
        "enterprise_id": ent, "name": "Noodle House", "webhook_set": False, "webhook_url": None,
        "created_at": None, "site_count": 0,
    }  # fmt: skip
    r = await client.put(f"/api/v1/enterprises/{ent}", json={"name": f"Noodle House {uid}"}, headers=sup)
    assert r.status_code == 200 and r.json()["name"] == f"Noodle House {uid}"

    secret = "s3cr3t-" + "x" * 40
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE enterprises SET webhook_url = %s, webhook_secret = %s WHERE enterprise_id = %s",
            ("https://erp:hunter2@hooks.example/in?token=abc&v=1", secret, ent),
        )
    r = await client.get(f"/api/v1/enterprises/{ent}")  # the operator reads
    assert r.status_code == 200
    assert r.json()["webhook_set"] is True
    assert r.json()["webhook_url"] == "https://erp:***@hooks.example/in?token=***&v=1"
    listed = await client.get("/api/v1/enterprises", params={"q": uid})
    assert [e["enterprise_id"] for e in listed.json()["items"]] == [ent]
    for text in (r.text, listed.text):
        assert secret not in text and "hunter2" not in text and "abc" not in text and "secret" not in text

    # Wildcards in q are text, not patterns.
    assert (await client.get("/api/v1/enterprises", params={"q": "%_%"})).json()["items"] == []
    assert (await client.get("/api/v1/enterprises/no-such-ent")).status_code == 404


async def test_enterprise_lists_page_by_cursor(
    client: httpx.AsyncClient, uid: str, sup: dict[str, str]
) -> None:
    ids = [f"pg-{uid}-{n}" for n in range(5)]
    for e in ids:
        assert (
            await client.put(f"/api/v1/enterprises/{e}", json={"name": f"Pager {uid}"}, headers=sup)
        ).is_success
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"q": f"Pager {uid}", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/enterprises", params=params)).json()
        seen += [e["enterprise_id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids
    assert (await client.get("/api/v1/enterprises", params={"cursor": "not a cursor!"})).status_code == 422


async def test_an_enterprise_is_deleted_only_without_sites_or_keys(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    r = await client.delete(f"/api/v1/enterprises/{seed.enterprise}", headers=sup)
    assert r.status_code == 409 and "1 site" in r.json()["detail"]
    keyed = f"keyed-{uid}"
    await client.put(f"/api/v1/enterprises/{keyed}", json={"name": "Keyed"}, headers=sup)
    await make_key(pool, "enterprise", keyed)
    assert (await client.delete(f"/api/v1/enterprises/{keyed}", headers=sup)).status_code == 409
    empty = f"empty-{uid}"
    await client.put(f"/api/v1/enterprises/{empty}", json={"name": "Empty"}, headers=sup)
    assert (await client.delete(f"/api/v1/enterprises/{empty}", headers=sup)).status_code == 204
    assert (await client.get(f"/api/v1/enterprises/{empty}")).status_code == 404
    assert (await client.delete(f"/api/v1/enterprises/{empty}", headers=sup)).status_code == 404


async def test_site_round_trip_with_handlers(
    client: httpx.AsyncClient, site: Site, uid: str, sup: dict[str, str]
) -> None:
    new = f"site2-{uid}"
    body = {"enterprise_id": site.enterprise_id, "name": "Cold store", "district": f"D-{uid}"}
    r = await client.put(f"/api/v1/sites/{new}", json=body, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json()["handlers"] == {"A": None, "B": None, "C": None}
    r = await client.put(f"/api/v1/sites/{new}", json={**body, "name": "Cold store 2"}, headers=sup)
    assert r.status_code == 200 and r.json()["name"] == "Cold store 2"

    url = f"/api/v1/sites/{new}/handlers"
    r = await client.put(url, json={"A": site.staff["A"], "C": site.staff["C"]}, headers=sup)
    assert r.status_code == 200, r.text
    handlers = (await client.get(f"/api/v1/sites/{new}")).json()["handlers"]
    assert handlers["A"] == {"staff_id": site.staff["A"], "name": "handler A", "away": False}
    assert handlers["B"] is None and handlers["C"]["staff_id"] == site.staff["C"]
    r = await client.put(url, json={"C": None}, headers=sup)  # cleared; A, left out, is kept
    assert r.json()["handlers"]["C"] is None and r.json()["handlers"]["A"]["staff_id"] == site.staff["A"]
    assert (await client.put(url, json={"A": "nobody-here"}, headers=sup)).status_code == 422
    assert (await client.put(url, json={"D": site.staff["A"]}, headers=sup)).status_code == 422
    assert (await client.put(f"/api/v1/sites/none-{uid}/handlers", json={}, headers=sup)).status_code == 404

    listed = (await client.get("/api/v1/sites", params={"district": f"D-{uid}"})).json()["items"]
    assert [s["site_id"] for s in listed] == [new]
    listed = (await client.get("/api/v1/sites", params={"enterprise_id": site.enterprise_id})).json()["items"]
    assert {s["site_id"] for s in listed} == {site.site_id, new}
    staff_a = (await client.get(f"/api/v1/staff/{site.staff['A']}")).json()
    assert staff_a["handles"] == sorted(
        [{"site_id": site.site_id, "slot": "A"}, {"site_id": new, "slot": "A"}], key=lambda h: h["site_id"]
    )

    refused = {**body, "enterprise_id": f"none-{uid}"}
    assert (await client.put(f"/api/v1/sites/{new}", json=refused, headers=sup)).status_code == 422
    assert (await client.put("/api/v1/sites/status", json=body, headers=sup)).status_code == 422
    assert (await client.get(f"/api/v1/sites/none-{uid}")).status_code == 404


async def test_a_site_with_devices_does_not_move_to_another_enterprise(
    client: httpx.AsyncClient, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    other = f"other-{uid}"
    await client.put(f"/api/v1/enterprises/{other}", json={"name": "Other"}, headers=sup)
    device = {"enterprise_id": seed.enterprise, "site_id": seed.site, "profile": "freezer"}
    assert (await client.put(f"/api/v1/devices/dev-{uid}", json=device, headers=sup)).status_code == 201
    move = {"enterprise_id": other, "name": "moved"}
    r = await client.put(f"/api/v1/sites/{seed.site}", json=move, headers=sup)
    assert r.status_code == 409 and "1 devices" in r.json()["detail"]
    assert (await client.delete(f"/api/v1/devices/dev-{uid}", headers=sup)).status_code == 204
    r = await client.put(f"/api/v1/sites/{seed.site}", json=move, headers=sup)
    assert r.status_code == 200 and r.json()["enterprise_id"] == other


async def test_device_round_trip_and_refusals(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    dev, url = f"dev-{uid}", f"/api/v1/devices/dev-{uid}"
    body = {
        "enterprise_id": seed.enterprise,
        "site_id": seed.site,
        "profile": "freezer",
        "attributes": {"max_temp_c": -20.5, "model": "DW-40", "doors": 2, "alarm": True, "note": None},
    }
    r = await client.put(url, json=body, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json()["attributes"] == body["attributes"]
    r = await client.put(url, json={**body, "profile": "chiller", "attributes": {}}, headers=sup)
    assert r.status_code == 200 and r.json()["profile"] == "chiller" and r.json()["attributes"] == {}
    got = (await client.get(url)).json()
    assert got["device_id"] == dev and got["site_id"] == seed.site
    listed = await client.get("/api/v1/devices", params={"site_id": seed.site, "profile": "chiller"})
    assert [d["device_id"] for d in listed.json()["items"]] == [dev]
    assert (await client.get("/api/v1/devices", params={"site_id": seed.site, "profile": "freezer"})).json()[
        "items"
    ] == []

    other = Seeder(pool, f"x{uid}")
    await other.registry()
    refusals = [
        {**body, "site_id": other.site},  # another enterprise's site
        {**body, "site_id": f"none-{uid}"},
        {**body, "profile": "has spaces"},
        {**body, "attributes": {f"k{i}": i for i in range(33)}},  # too many keys
        {**body, "attributes": {"note": "x" * 257}},  # value too long
        {**body, "attributes": {f"k{i}": "x" * 250 for i in range(20)}},  # over 4096 bytes
        {**body, "attributes": {"nested": {"a": 1}}},  # not a scalar
        {**body, "attributes": {"list": [1, 2]}},
        {**body, "attributes": {"bad key!": 1}},
        {**body, "attributes": {"nul": "a\x00b"}},
        {**body, "attributes": ["not", "an", "object"]},
        {**body, "extra": 1},
    ]
    for bad in refusals:
        r = await client.put(url, json=bad, headers=sup)
        assert r.status_code == 422, bad
    r = await client.put(url, json={**body, "site_id": other.site}, headers=sup)
    assert f"belongs to enterprise {other.enterprise}" in r.json()["detail"]
    # NaN is not JSON, but Python's parser takes it: still refused, not a 500.
    raw = '{"enterprise_id": "%s", "site_id": "%s", "profile": "freezer", "attributes": {"t": NaN}}'
    json_headers = {**sup, "Content-Type": "application/json"}
    for number in ("NaN", "Infinity", "-Infinity"):
        payload = raw.replace("NaN", number) % (seed.enterprise, seed.site)
        r = await client.put(url, content=payload, headers=json_headers)
        assert r.status_code == 422 and "finite" in r.text, number

    # Deleted only without an active alert on it; the alert's history stays.
    await _alert(pool, f"a-{uid}-d", site=seed, kind="device", source=dev, code="DEVICE_OFFLINE", tier=3)
    r = await client.delete(url, headers=sup)
    assert r.status_code == 409 and f"a-{uid}-d" in r.json()["detail"]
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET status = 'dismissed' WHERE alert_id = %s", (f"a-{uid}-d",))
    assert (await client.delete(url, headers=sup)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url, headers=sup)).status_code == 404


async def test_camera_round_trip_masks_the_password_and_keeps_it_on_write_back(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    cam, url = f"cam-{uid}", f"/api/v1/cameras/cam-{uid}"
    real = "rtsp://viewer:pa55w0rd@10.0.4.21:554/stream1"
    body = {"enterprise_id": seed.enterprise, "site_id": seed.site, "source": real, "zones": [ZONE]}
    r = await client.put(url, json=body, headers=sup)
    assert r.status_code == 201, r.text
    masked = "rtsp://viewer:***@10.0.4.21:554/stream1"
    assert r.json()["source"] == masked and r.json()["source_kind"] == "stream"
    assert r.json()["sample_fps"] == 2.0 and r.json()["zones"] == [ZONE] and r.json()["enabled"] is True
    for text in (
        r.text,
        (await client.get(url)).text,
        (await client.get("/api/v1/cameras", params={"site_id": seed.site})).text,
    ):
        assert "pa55w0rd" not in text and masked in text

    # Read, edit, write back: the masked source keeps the stored password.
    edited = {**(await client.get(url)).json(), "sample_fps": 0.5, "zones": [], "enabled": False}
    edited = {k: edited[k] for k in ("enterprise_id", "site_id", "source", "sample_fps", "zones", "enabled")}
    r = await client.put(url, json=edited, headers=sup)
    assert r.status_code == 200, r.text
    assert r.json()["sample_fps"] == 0.5 and r.json()["enabled"] is False and r.json()["zones"] == []
    assert await _fetch(pool, "SELECT source FROM cameras WHERE camera_id = %s", cam) == real
    # A mask anywhere else would be stored as the password: refused.
    moved = {**edited, "source": "rtsp://viewer:***@10.0.4.99:554/stream1"}
    assert (await client.put(url, json=moved, headers=sup)).status_code == 422
    assert (await client.get("/api/v1/cameras", params={"enabled": False, "site_id": seed.site})).json()[
        "items"
    ][0]["camera_id"] == cam

    push = await client.put(f"/api/v1/cameras/p{cam}", json={**body, "source": "push"}, headers=sup)
    assert push.status_code == 201 and push.json()["source_kind"] == "push"


async def test_camera_refusals_carry_the_validators_reason(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    url = f"/api/v1/cameras/cam-{uid}"
    body = {"enterprise_id": seed.enterprise, "site_id": seed.site, "source": "push"}
    other = Seeder(pool, f"x{uid}")
    await other.registry()
    cases = [
        ({"source": "ftp://cam/1"}, "scheme 'ftp' not supported"),
        ({"source": "rtsp:///stream"}, "has no host"),
        ({"source": "videos/kitchen.mp4"}, "must be an absolute path"),
        ({"sample_fps": 0}, "sample_fps must be in (0, 30]"),
        ({"sample_fps": 31}, "sample_fps must be in (0, 30]"),
        ({"zones": [{"name": "z", "points": [[0, 0], [1, 1]]}]}, "points must be a list of 3"),
        ({"zones": [{"points": [[0, 0], [1, 1], [2, 0]]}]}, "0 <= x, y <= 1"),
        ({"zones": [{**ZONE, "codes": ["NOT_A_CODE"]}]}, "violation codes from the catalogue"),
        ({"zones": ["prep"]}, "must be an object"),
        ({"zones": [ZONE] * 17}, "at most 16 polygons"),
        ({"zones": [{**ZONE, "name": "n" * 101}]}, "at most 100 characters"),
        ({"site_id": other.site}, f"belongs to enterprise {other.enterprise}"),
        ({"site_id": f"none-{uid}"}, "not found"),
    ]
    for change, reason in cases:
        r = await client.put(url, json=body | change, headers=sup)
        assert r.status_code == 422, change
        assert reason in r.json()["detail"], (change, r.json())
    for change in ({"source": "rtsp://h/\x00"}, {"source": ""}, {"zones": "all"}, {"sample_fps": "fast"}):
        assert (await client.put(url, json=body | change, headers=sup)).status_code == 422, change
    raw = '{"enterprise_id": "%s", "site_id": "%s", "source": "push", "sample_fps": NaN}'
    r = await client.put(
        url, content=raw % (seed.enterprise, seed.site), headers={**sup, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "sample_fps" in r.json()["detail"]
    assert (await client.get(url)).status_code == 404  # nothing was stored


async def test_staff_round_trip(client: httpx.AsyncClient, uid: str, sup: dict[str, str]) -> None:
    url = f"/api/v1/staff/li-{uid}"
    r = await client.put(url, json={"name": "Li Wei"}, headers=sup)
    assert r.status_code == 201, r.text
    assert r.json() | {"created_at": None, "updated_at": None} == {
        "staff_id": f"li-{uid}", "name": "Li Wei", "away": False, "handles": [],
        "created_at": None, "updated_at": None,
    }  # fmt: skip
    r = await client.put(url, json={"name": f"Li Wei {uid}"}, headers=sup)
    assert r.status_code == 200 and r.json()["name"] == f"Li Wei {uid}"
    assert (await client.get(url)).json()["name"] == f"Li Wei {uid}"
    listed = (await client.get("/api/v1/staff", params={"q": uid, "away": False})).json()["items"]
    assert [s["staff_id"] for s in listed] == [f"li-{uid}"]
    assert (await client.get("/api/v1/staff", params={"q": uid, "away": True})).json()["items"] == []
    for bad in ({"name": "   "}, {"name": "x" * 201}, {"name": "a\nb"}, {}):
        assert (await client.put(url, json=bad, headers=sup)).status_code == 422, bad
    assert (await client.get(f"/api/v1/staff/none-{uid}")).status_code == 404


async def test_bad_ids_and_filters_are_422(client: httpx.AsyncClient, sup: dict[str, str]) -> None:
    for bad in ("bad%20id!", "x" * 65, "a.b", "%00"):
        for entity in ("enterprises", "sites", "devices", "cameras", "staff"):
            assert (await client.get(f"/api/v1/{entity}/{bad}")).status_code == 422, (entity, bad)
            r = await client.put(f"/api/v1/{entity}/{bad}", json={"name": "x"}, headers=sup)
            assert r.status_code == 422, (entity, bad)
    for path, params in (
        ("/api/v1/sites", {"enterprise_id": "no good"}),
        ("/api/v1/sites/status", {"district": "a\x00b"}),
        ("/api/v1/devices", {"profile": "no good"}),
        ("/api/v1/enterprises", {"q": "x" * 101}),
        ("/api/v1/staff", {"limit": 0}),
    ):
        assert (await client.get(path, params=params)).status_code == 422, (path, params)


async def test_roles_gate_every_registry_route(
    app, client: httpx.AsyncClient, pool, seed: Seeder, operator_key: str
) -> None:
    enterprise_key = await make_key(pool, "enterprise", seed.enterprise)
    reads = [
        "/api/v1/enterprises", f"/api/v1/enterprises/{seed.enterprise}", "/api/v1/sites",
        f"/api/v1/sites/{seed.site}", "/api/v1/sites/status", "/api/v1/devices", "/api/v1/cameras",
        "/api/v1/staff",
    ]  # fmt: skip
    writes = [
        ("PUT", f"/api/v1/enterprises/{seed.enterprise}", {"name": "x"}),
        ("DELETE", f"/api/v1/enterprises/{seed.enterprise}", None),
        ("PUT", f"/api/v1/sites/{seed.site}", {"enterprise_id": seed.enterprise, "name": "x"}),
        ("PUT", f"/api/v1/sites/{seed.site}/handlers", {}),
        (
            "PUT",
            "/api/v1/devices/d1",
            {"enterprise_id": seed.enterprise, "site_id": seed.site, "profile": "x"},
        ),
        ("DELETE", "/api/v1/devices/d1", None),
        (
            "PUT",
            "/api/v1/cameras/c1",
            {"enterprise_id": seed.enterprise, "site_id": seed.site, "source": "push"},
        ),
        ("PUT", "/api/v1/staff/s1", {"name": "x"}),
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as anonymous:
        for path in reads:
            assert (await anonymous.get(path)).status_code == 401, path
        for method, path, body in writes:
            assert (await anonymous.request(method, path, json=body)).status_code == 401, path
    for path in reads:
        assert (await client.get(path, headers=bearer(operator_key))).status_code == 200, path
        assert (await client.get(path, headers=bearer(enterprise_key))).status_code == 403, path
    for method, path, body in writes:
        for key in (operator_key, enterprise_key):
            r = await client.request(method, path, json=body, headers=bearer(key))
            assert r.status_code == 403, (method, path)
        # The static operator token is an operator too.
        assert (await client.request(method, path, json=body)).status_code == 403, (method, path)


async def test_site_status_shows_offline_sources_open_alerts_by_tier_and_handlers(
    client: httpx.AsyncClient, pool, site: Site, uid: str, sup: dict[str, str]
) -> None:
    ent, sid = site.enterprise_id, site.site_id
    for cam in ("cam-a", "cam-b"):
        body = {"enterprise_id": ent, "site_id": sid, "source": "push"}
        assert (await client.put(f"/api/v1/cameras/{cam}-{uid}", json=body, headers=sup)).is_success
    for dev in ("dev-a", "dev-b"):
        body = {"enterprise_id": ent, "site_id": sid, "profile": "freezer"}
        assert (await client.put(f"/api/v1/devices/{dev}-{uid}", json=body, headers=sup)).is_success
    quiet = f"quiet-{uid}"
    body = {"enterprise_id": ent, "name": "Quiet", "district": "Xuhui"}
    assert (await client.put(f"/api/v1/sites/{quiet}", json=body, headers=sup)).status_code == 201

    await _alert(
        pool, f"a-{uid}-1", site=site, kind="camera", source=f"cam-a-{uid}", code="CAMERA_OFFLINE", tier=2
    )
    await _alert(
        pool, f"a-{uid}-2", site=site, kind="device", source=f"dev-b-{uid}", code="DEVICE_OFFLINE", tier=3
    )
    await _alert(
        pool, f"a-{uid}-3", site=site, kind="camera", source=f"cam-b-{uid}", code="KITCHEN_SMOKING", tier=1
    )
    # Closed or dismissed alerts count for nothing, offline ones included.
    await _alert(
        pool, f"a-{uid}-4", site=site, kind="device", source=f"dev-a-{uid}", code="DEVICE_OFFLINE", tier=3,
        status="closed",
    )  # fmt: skip
    await _alert(
        pool, f"a-{uid}-5", site=site, kind="camera", source=f"cam-b-{uid}", code="CAMERA_OFFLINE", tier=2,
        status="dismissed",
    )  # fmt: skip

    r = await client.get("/api/v1/sites/status", params={"enterprise_id": ent})
    assert r.status_code == 200, r.text
    by_site = {s["site_id"]: s for s in r.json()["items"]}
    assert set(by_site) == {sid, quiet}
    status = by_site[sid]
    assert status["cameras"] == [
        {"camera_id": f"cam-a-{uid}", "enabled": True, "online": False},
        {"camera_id": f"cam-b-{uid}", "enabled": True, "online": True},
    ]
    assert status["devices"] == [
        {"device_id": f"dev-a-{uid}", "profile": "freezer", "online": True},
        {"device_id": f"dev-b-{uid}", "profile": "freezer", "online": False},
    ]
    assert status["open_alerts"] == {"total": 3, "tier_1": 1, "tier_2": 1, "tier_3": 1}
    assert {slot: h["staff_id"] for slot, h in status["handlers"].items()} == site.staff
    assert by_site[quiet]["open_alerts"]["total"] == 0 and by_site[quiet]["cameras"] == []

    # Back online once the alert closes; the district filter narrows to the enterprise's Xuhui sites.
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET status = 'closed' WHERE alert_id = %s", (f"a-{uid}-1",))
    r = await client.get(
        "/api/v1/sites/status", params={"enterprise_id": ent, "district": "Xuhui", "limit": 1}
    )
    page = r.json()
    assert [s["site_id"] for s in page["items"]] == [min(sid, quiet)] and page["next_cursor"] == min(
        sid, quiet
    )
    r = await client.get(
        "/api/v1/sites/status",
        params={"enterprise_id": ent, "district": "Xuhui", "cursor": page["next_cursor"]},
    )
    rest = r.json()["items"]
    assert [s["site_id"] for s in rest] == [max(sid, quiet)] and r.json()["next_cursor"] is None
    status = next(s for s in page["items"] + rest if s["site_id"] == sid)
    assert all(c["online"] for c in status["cameras"])


def test_openapi_documents_summaries_and_put_examples(app) -> None:
    doc = app.openapi()
    registry = {
        (path, method): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "registry" in op.get("tags", [])
    }
    assert len(registry) >= 19
    for (path, method), op in registry.items():
        assert op.get("summary"), (path, method)
        if method == "put":
            content = op["requestBody"]["content"]["application/json"]
            assert content["schema"].get("examples") or content.get("examples"), path
    assert "webhook_secret" not in str(doc)


async def test_unknown_profiles_and_mistyped_attributes_are_refused_with_what_is_known(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    from shell.admin import profile_catalogue
    from vigil.registry import publish_profiles

    async with pool.connection() as conn:  # what `vigil devices register` and the detector publish
        await publish_profiles(conn, profile_catalogue())
    url = f"/api/v1/devices/dev-{uid}"
    body = {"enterprise_id": seed.enterprise, "site_id": seed.site, "profile": "freezer"}
    r = await client.put(url, json={**body, "profile": "freezr"}, headers=sup)
    assert r.status_code == 422 and "unknown profile 'freezr'" in r.text and "freezer" in r.text, r.text
    for attributes, says in (
        ({"duration_s": "abc"}, "duration_s must be a number"),
        ({"max_temp_c": True}, "max_temp_c must be a number"),
        ({"timezone": "Mars/Base"}, "IANA time zone"),
        ({"night_start": "25:00"}, "HH:MM"),
    ):
        r = await client.put(url, json={**body, "attributes": attributes}, headers=sup)
        assert r.status_code == 422 and says in r.text, (attributes, r.text)
    assert (await client.get(url)).status_code == 404  # nothing was written
    fine = {"duration_s": 60, "location": "floor-2", "timezone": "Asia/Shanghai", "night_start": "22:00"}
    r = await client.put(url, json={**body, "attributes": fine}, headers=sup)
    assert r.status_code == 201 and r.json()["attributes"] == fine, r.text


async def test_device_access_tokens_are_issued_once_stored_hashed_and_revoked(
    client: httpx.AsyncClient, pool, seed: Seeder, uid: str, sup: dict[str, str]
) -> None:
    from vigil.keys import device_for_token

    url = f"/api/v1/devices/tok-{uid}"
    body = {"enterprise_id": seed.enterprise, "site_id": seed.site, "profile": "freezer"}
    assert (await client.put(url, json=body, headers=sup)).status_code == 201
    assert (await client.post(f"/api/v1/devices/none-{uid}/token", headers=sup)).status_code == 404
    assert (await client.post(f"{url}/token")).status_code == 403  # the operator token: not a supervisor
    first = (await client.post(f"{url}/token", headers=sup)).json()
    second = (await client.post(f"{url}/token", headers=sup)).json()  # rotation revokes the first
    async with pool.connection() as conn:
        assert await device_for_token(conn, first["token"]) is None
        found = await device_for_token(conn, second["token"])
        assert found is not None and found.device_id == f"tok-{uid}"
        stored = await _fetch(
            pool,
            "SELECT string_agg(token_sha256::text, ',') FROM device_tokens WHERE device_id = %s",
            f"tok-{uid}",
        )
        assert second["token"] not in stored
    assert (await client.delete(f"{url}/token", headers=sup)).status_code == 204
    async with pool.connection() as conn:
        assert await device_for_token(conn, second["token"]) is None
