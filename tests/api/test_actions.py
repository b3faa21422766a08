"""The bureau's lifecycle moves over HTTP, on alerts opened by the real store in the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from alerts import lifecycle
from tests.alerts.test_ongoing_condition import clear, device_violation
from tests.lifecycle import OPERATOR, POLICY, Site, act, alert, open_alert, submit, trail, violation


async def test_verify_before_a_rectification_is_a_conflict_naming_the_needed_state(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    r = await client.post(f"/api/v1/alerts/{a['alert_id']}/verify", json={})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "cannot verify an alert that is open (allowed from: rectification_submitted)"
    )


async def test_verify_closes_with_the_operator_as_the_actor(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    await submit(pool, site, a["alert_id"])
    r = await client.post(f"/api/v1/alerts/{a['alert_id']}/verify", json={"note": "checked on site"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    closed = await alert(pool, a["alert_id"])
    assert closed["disposition"] == "warning"
    async with pool.connection() as conn:
        actor = await (
            await conn.execute(
                "SELECT actor, reason FROM alert_audit WHERE alert_id=%s AND action='verified'",
                (a["alert_id"],),
            )
        ).fetchone()
    assert actor == ("operator:operator", "checked on site")


async def test_reject_takes_a_new_deadline_and_refuses_a_past_one(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    await submit(pool, site, a["alert_id"])
    url = f"/api/v1/alerts/{a['alert_id']}/reject"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await client.post(url, json={"reason": "photo is blurred", "deadline": past})
    assert r.status_code == 422 and "future" in r.json()["detail"]
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=8)
    r = await client.post(
        url, json={"reason": "photo is blurred", "deadline": future.replace(tzinfo=None).isoformat()}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    assert datetime.fromisoformat(r.json()["deadline"]) == future  # no offset was taken as UTC


async def test_dismiss_needs_a_reason_and_is_final(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    url = f"/api/v1/alerts/{a['alert_id']}/dismiss"
    assert (await client.post(url, json={"reason": ""})).status_code == 422
    assert (await client.post(url, json={})).status_code == 422
    r = await client.post(url, json={"reason": "reflection on a steel hood"})
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    again = await client.post(url, json={"reason": "twice"})
    assert again.status_code == 409 and "dismissed" in again.json()["detail"]


async def test_escalate_difficult_and_assign(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    base = f"/api/v1/alerts/{a['alert_id']}"
    r = await client.post(f"{base}/flag-difficult", json={"reason": "chain with several sites"})
    assert r.status_code == 200 and (await alert(pool, a["alert_id"]))["assignee"] == site.staff["C"]
    r = await client.post(f"{base}/assign", json={"staff_id": site.staff["B"]})
    assert r.status_code == 200 and (await alert(pool, a["alert_id"]))["assignee"] == site.staff["B"]
    assert (await client.post(f"{base}/assign", json={"staff_id": "nobody"})).status_code == 422
    assert (await client.post(f"{base}/assign", json={"staff_id": "bad id!"})).status_code == 422
    r = await client.post(f"{base}/escalate", json={"reason": "refuses to answer"})
    assert r.status_code == 200 and r.json()["status"] == "escalated"
    assert [t[0] for t in await trail(pool, a["alert_id"])][-3:] == [
        "flagged_difficult",
        "assigned",
        "escalated",
    ]


async def test_unknown_alert_and_missing_token(client, app, site: Site):
    assert (await client.post("/api/v1/alerts/nope/verify", json={})).status_code == 404
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        assert (await anonymous.post("/api/v1/alerts/nope/verify", json={})).status_code == 401


async def test_marking_a_handler_away_moves_their_alerts_to_the_backup(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    assert a["assignee"] == site.staff["A"]
    r = await client.put(f"/api/v1/staff/{site.staff['A']}/away", json={"away": True})
    assert r.status_code == 200, r.text
    assert r.json()["reassigned"] == [a["alert_id"]]
    assert (await alert(pool, a["alert_id"]))["assignee"] == site.staff["B"]
    assert (await trail(pool, a["alert_id"]))[-1][0] == "reassigned"
    assert (await client.put("/api/v1/staff/nobody/away", json={"away": True})).status_code == 404


async def test_follow_up_visits_are_listed_and_their_outcome_recorded(client, pool, site: Site):
    a = await open_alert(pool, violation(site))
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET penalty_case = true WHERE alert_id=%s", (a["alert_id"],))
    await submit(pool, site, a["alert_id"])
    await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    r = await client.get("/api/v1/visits", params={"status": "scheduled", "limit": 500})
    [visit] = [v for v in r.json() if v["alert_id"] == a["alert_id"]]
    assert visit["site_id"] == site.site_id and visit["staff_id"] == site.staff["A"]
    url = f"/api/v1/visits/{visit['visit_id']}"
    assert (await client.post(url, json={"outcome": "maybe"})).status_code == 422
    r = await client.post(url, json={"outcome": "non_compliant", "notes": "bin still open"})
    assert (
        r.status_code == 200 and r.json()["status"] == "completed" and r.json()["outcome"] == "non_compliant"
    )
    assert (await client.post(url, json={"outcome": "compliant"})).status_code == 404


async def test_alert_detail_shows_notices_with_their_deliveries_and_the_rectifications(
    client, pool, site: Site
):
    a = await open_alert(pool, violation(site))
    await submit(pool, site, a["alert_id"], "new hood filter fitted")
    await client.post(f"/api/v1/alerts/{a['alert_id']}/reject", json={"reason": "show the filter label"})
    r = await client.get(f"/api/v1/alerts/{a['alert_id']}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["leniency"] == "first_offence" and detail["assignee"] == site.staff["A"]
    assert [(n["kind"], n["read_at"]) for n in detail["notices"]] == [("opened", None), ("rejected", None)]
    for n in detail["notices"]:  # queued for MQTT; no notifier runs in this test
        assert [(d["channel"], d["delivered_at"]) for d in n["deliveries"]] == [("mqtt_notice", None)]
    [rect] = detail["rectifications"]
    assert rect["description"] == "new hood filter fitted" and rect["decision"] == "rejected"
    assert rect["decision_reason"] == "show the filter label" and rect["decided_by"] == "operator:operator"


async def test_alerts_are_found_by_district_and_by_text_in_their_notes(client, pool, site: Site, uid):
    a = await open_alert(pool, violation(site))
    b = await open_alert(pool, violation(site, source="cam-2"))
    await client.post(
        f"/api/v1/alerts/{a['alert_id']}/dismiss", json={"reason": f"油烟 not smoke {uid} 100%_done"}
    )

    async def found(**params: str) -> set[str]:
        r = await client.get("/api/v1/alerts", params={"limit": 200, **params})
        assert r.status_code == 200, r.text
        return {i["alert_id"] for i in r.json()["items"]}

    assert await found(q=f"油烟 NOT SMOKE {uid}") == {a["alert_id"]}  # case-insensitive, Chinese too
    assert await found(q=f"{uid} 100%_done") == {a["alert_id"]}
    assert await found(q=f"{uid} 100xxdone") == set()  # % and _ are literal, not wildcards
    assert {a["alert_id"], b["alert_id"]} <= await found(district="Xuhui", enterprise_id=site.enterprise_id)
    assert await found(district="Elsewhere", enterprise_id=site.enterprise_id) == set()
    assert (await client.get("/api/v1/alerts", params={"q": "bad\x00"})).status_code == 422


async def test_verify_while_the_device_still_reports_the_violation_is_a_409_saying_why(
    client, pool, site: Site
):
    # Issue 16.5: a freezer still warm is not rectified, whatever the photo shows.
    v = device_violation(site)
    a = await open_alert(pool, v)
    await submit(pool, site, a["alert_id"])
    r = await client.post(f"/api/v1/alerts/{a['alert_id']}/verify", json={})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "cannot verify: the device still reports Freezer warmer than -18 °C (the condition has not"
        " cleared), so the rectification is not complete"
        " / 设备仍在报告“冷冻库温度高于-18℃”（违法状态尚未解除），整改未完成，不能核验结案"
    )
    await clear(pool, v)
    r = await client.post(f"/api/v1/alerts/{a['alert_id']}/verify", json={})
    assert r.status_code == 200 and r.json()["status"] == "closed"
