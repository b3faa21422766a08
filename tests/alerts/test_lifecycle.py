"""The alert lifecycle on a real PostgreSQL: every path, the illegal moves, leniency, assignment,
deadlines fired from the database."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from alerts import lifecycle
from alerts.notices import mark_read
from alerts.timers import fire_due
from tests.lifecycle import (
    OPERATOR,
    PHOTO,
    POLICY,
    Site,
    act,
    alert,
    notices,
    open_alert,
    rows,
    submit,
    trail,
    violation,
)
from vigil.errors import IllegalTransition, InvalidRequest, NotFound

# --- pure rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("verify", "open"),
        ("verify", "acknowledged"),
        ("reject", "notified"),
        ("acknowledge", "closed"),
        ("acknowledge", "rectification_submitted"),
        ("submit_rectification", "dismissed"),
        ("escalate", "escalated"),
        ("escalate", "rectification_submitted"),
        ("dismiss", "closed"),
        ("assign", "dismissed"),
    ],
)
def test_illegal_moves_are_refused_with_the_states_they_need(action, status):
    with pytest.raises(IllegalTransition, match=rf"cannot .* that is {status} \(allowed from: "):
        lifecycle.check_transition(action, status)


def test_every_active_state_can_be_dismissed_and_no_terminal_state_can_move():
    for status in lifecycle.ACTIVE:
        lifecycle.check_transition("dismiss", status)
    for action in lifecycle.ALLOWED:
        assert not (lifecycle.ALLOWED[action] & lifecycle.TERMINAL), action


# --- paths through the lifecycle -----------------------------------------------------------------


async def test_first_offence_acknowledged_rectified_and_verified_ends_in_a_warning(pool, site):
    a = await open_alert(pool, violation(site))
    assert (a["status"], a["leniency"], a["penalty_case"]) == ("open", "first_offence", False)
    assert (a["assignee"], a["assigned_slot"]) == (site.staff["A"], "A")

    await act(
        pool, lifecycle.acknowledge, a["alert_id"], enterprise_id=site.enterprise_id, actor="enterprise:x"
    )
    sub = await submit(pool, site, a["alert_id"], "staff retrained, smoking area moved outside")
    assert sub["status"] == "rectification_submitted" and sub["rectified_at"] is not None
    closed = await act(
        pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, note="photos check out", policy=POLICY
    )

    assert (closed["status"], closed["disposition"], closed["penalty_case"]) == ("closed", "warning", False)
    assert closed["closed_at"] is not None
    assert await trail(pool, a["alert_id"]) == [
        ("opened", None, "open"),
        ("acknowledged", "open", "acknowledged"),
        ("rectification_submitted", "acknowledged", "rectification_submitted"),
        ("verified", "rectification_submitted", "closed"),
    ]
    [(decision, photos)] = await rows(
        pool, "SELECT decision, photos FROM rectifications WHERE alert_id=%s", a["alert_id"]
    )
    assert decision == "accepted" and photos == [PHOTO]
    sent = await notices(pool, a["alert_id"])
    assert [n for n, _ in sent] == [f"{a['alert_id']}:opened", f"{a['alert_id']}:closed:1"]
    opened = sent[0][1]
    assert opened["name_zh"] == "后厨吸烟" and opened["leniency"] == "first_offence"
    assert opened["evidence"] == [f"https://vigil.test/api/v1/alerts/{a['alert_id']}/evidence/{'cd' * 32}"]
    assert opened["rectify_by"] == int(a["deadline"].timestamp() * 1000)
    assert sent[1][1]["disposition"] == "warning"
    # Each notice is queued on MQTT (this enterprise has no webhook).
    channels = await rows(
        pool,
        "SELECT notice_id, channel FROM outbox WHERE alert_id=%s AND notice_id IS NOT NULL ORDER BY 1, 2",
        a["alert_id"],
    )
    assert channels == sorted((n, "mqtt_notice") for n, _ in sent)
    assert await rows(pool, "SELECT 1 FROM follow_up_visits WHERE alert_id=%s", a["alert_id"]) == []


async def test_a_rejected_rectification_gets_a_new_deadline_and_can_be_resubmitted(pool, site):
    a = await open_alert(pool, violation(site))
    await submit(pool, site, a["alert_id"], "we think it is fine")
    with pytest.raises(InvalidRequest, match="reason is required"):
        await act(pool, lifecycle.reject, a["alert_id"], actor=OPERATOR, reason="  ", policy=POLICY)
    with pytest.raises(InvalidRequest, match="in the future"):
        await act(
            pool, lifecycle.reject, a["alert_id"], actor=OPERATOR, reason="no photo of the bin",
            deadline=datetime.now(UTC) - timedelta(hours=1), policy=POLICY,
        )  # fmt: skip
    new_deadline = datetime.now(UTC) + timedelta(hours=6)
    rejected = await act(
        pool, lifecycle.reject, a["alert_id"], actor=OPERATOR, reason="no photo of the bin",
        deadline=new_deadline, policy=POLICY,
    )  # fmt: skip
    assert rejected["status"] == "rejected" and rejected["deadline"] == new_deadline
    [(_, notice)] = [n for n in await notices(pool, a["alert_id"]) if n[0].endswith(":rejected:1")]
    assert notice["reason"] == "no photo of the bin" and notice["rectify_by"] == int(
        new_deadline.timestamp() * 1000
    )

    await submit(pool, site, a["alert_id"], "photo of the covered bin attached")
    closed = await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    assert closed["status"] == "closed" and closed["disposition"] == "warning"
    decisions = await rows(
        pool, "SELECT decision FROM rectifications WHERE alert_id=%s ORDER BY rectification_id", a["alert_id"]
    )
    assert decisions == [("rejected",), ("accepted",)]


async def test_a_dismissed_false_alarm_is_final_and_not_an_offence(pool, site):
    first = await open_alert(pool, violation(site, at=datetime.now(UTC) - timedelta(minutes=5)))
    with pytest.raises(InvalidRequest, match="reason is required"):
        await act(pool, lifecycle.dismiss, first["alert_id"], actor=OPERATOR, reason="", policy=POLICY)
    dismissed = await act(
        pool,
        lifecycle.dismiss,
        first["alert_id"],
        actor=OPERATOR,
        reason="a steaming pot, not smoke",
        policy=POLICY,
    )
    assert (dismissed["status"], dismissed["disposition"]) == ("dismissed", "false_alarm")
    assert dismissed["close_reason"] == "a steaming pot, not smoke"
    for fn, kwargs in [
        (lifecycle.verify, {"actor": OPERATOR, "policy": POLICY}),
        (lifecycle.acknowledge, {"enterprise_id": site.enterprise_id, "actor": "enterprise:x"}),
        (lifecycle.escalate, {"actor": OPERATOR, "reason": "why not", "policy": POLICY}),
    ]:
        with pytest.raises(IllegalTransition, match="dismissed"):
            await act(pool, fn, first["alert_id"], **kwargs)
    # The source can raise again (the old alert is no longer open), and a false alarm is no offence.
    again = await open_alert(pool, violation(site))
    assert again["alert_id"] != first["alert_id"] and again["leniency"] == "first_offence"


async def test_illegal_moves_on_a_real_alert_change_nothing(pool, site):
    a = await open_alert(pool, violation(site))
    with pytest.raises(
        IllegalTransition, match=r"cannot verify an alert that is open \(allowed from: rectif"
    ):
        await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    with pytest.raises(IllegalTransition):
        await act(pool, lifecycle.reject, a["alert_id"], actor=OPERATOR, reason="r", policy=POLICY)
    assert (await alert(pool, a["alert_id"]))["status"] == "open"
    assert await trail(pool, a["alert_id"]) == [("opened", None, "open")]


async def test_an_enterprise_cannot_touch_another_enterprises_alert(pool, site):
    a = await open_alert(pool, violation(site))
    with pytest.raises(NotFound):
        await act(
            pool, lifecycle.acknowledge, a["alert_id"], enterprise_id="someone-else", actor="enterprise:e"
        )
    with pytest.raises(NotFound):
        await act(
            pool, lifecycle.submit_rectification, a["alert_id"],
            enterprise_id="someone-else", actor="enterprise:e", description="not mine",
        )  # fmt: skip
    assert (await alert(pool, a["alert_id"]))["status"] == "open"


async def test_rectification_input_is_checked(pool, site):
    a = await open_alert(pool, violation(site))
    for kwargs, message in [
        ({"description": " "}, "description is required"),
        ({"description": "x" * 4001}, "at most 4000"),
        ({"description": "ok", "photos": ["../../etc/passwd"]}, "SHA-256"),
        ({"description": "ok", "photos": [PHOTO] * 11}, "at most 10 photos"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            await act(
                pool, lifecycle.submit_rectification, a["alert_id"],
                enterprise_id=site.enterprise_id, actor="enterprise:x", **kwargs,
            )  # fmt: skip


# --- deadlines, repeats and penalties ------------------------------------------------------------


async def test_a_missed_deadline_escalates_to_the_specialist_and_forfeits_leniency(pool, site):
    a = await open_alert(pool, violation(site))
    async with pool.connection() as conn:  # the enterprise let the deadline pass
        await conn.execute(
            "UPDATE alerts SET deadline = now() - interval '1 minute' WHERE alert_id=%s", (a["alert_id"],)
        )
    async with pool.connection() as conn, conn.transaction():
        fired = await fire_due(conn, POLICY, limit=10_000)
    assert a["alert_id"] in fired
    esc = await alert(pool, a["alert_id"])
    assert (esc["status"], esc["assignee"], esc["assigned_slot"], esc["penalty_case"]) == (
        "escalated", site.staff["C"], "C", True,
    )  # fmt: skip
    assert "deadline" in esc["escalation_reason"] and "forfeited" in esc["escalation_reason"]
    assert (await trail(pool, a["alert_id"]))[-1] == ("escalated", "open", "escalated")
    assert any(n.endswith(":escalated:1") for n, _ in await notices(pool, a["alert_id"]))
    async with pool.connection() as conn, conn.transaction():  # fires once
        assert a["alert_id"] not in await fire_due(conn, POLICY, limit=10_000)

    await submit(pool, site, a["alert_id"])
    closed = await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    assert (closed["disposition"], closed["penalty_case"]) == ("penalty", True)
    [(visit_id, staff_id, status, due)] = await rows(
        pool,
        "SELECT visit_id, staff_id, status, due_at FROM follow_up_visits WHERE alert_id=%s",
        a["alert_id"],
    )
    assert staff_id == site.staff["C"] and status == "scheduled"
    assert timedelta(days=29) < due - closed["closed_at"] <= timedelta(days=30)
    async with pool.connection() as conn, conn.transaction():
        await lifecycle.record_visit(conn, visit_id, actor=OPERATOR, outcome="compliant", notes="all clean")
    assert await rows(pool, "SELECT status, outcome FROM follow_up_visits WHERE visit_id=%s", visit_id) == [
        ("completed", "compliant")
    ]
    assert (await trail(pool, a["alert_id"]))[-1] == ("follow_up_visit", "closed", "closed")
    with pytest.raises(NotFound):
        await act(pool, lifecycle.record_visit, visit_id, actor=OPERATOR, outcome="compliant")


async def test_a_second_offence_is_flagged_for_a_penalty_and_escalated_at_once(pool, site):
    first = await open_alert(pool, violation(site, at=datetime.now(UTC) - timedelta(days=40)))
    await submit(pool, site, first["alert_id"])
    await act(pool, lifecycle.verify, first["alert_id"], actor=OPERATOR, policy=POLICY)

    async with pool.connection() as conn:  # this enterprise has a webhook as well as MQTT
        await conn.execute(
            "UPDATE enterprises SET webhook_url = 'https://erp.test/vigil', webhook_secret = %s"
            " WHERE enterprise_id = %s",
            ("s" * 32, site.enterprise_id),
        )
    second = await open_alert(pool, violation(site, source="cam-2"))
    assert (second["leniency"], second["penalty_case"], second["prior_alert_id"]) == (
        "repeat", True, first["alert_id"],
    )  # fmt: skip
    assert (second["status"], second["assignee"], second["assigned_slot"]) == (
        "escalated",
        site.staff["C"],
        "C",
    )
    assert await trail(pool, second["alert_id"]) == [
        ("opened", None, "open"),
        ("escalated", "open", "escalated"),
    ]
    by_kind = {n["kind"]: n for _, n in await notices(pool, second["alert_id"])}
    assert sorted(by_kind) == ["escalated", "opened"]  # the escalation is a notice of its own
    opened, escalated = by_kind["opened"], by_kind["escalated"]
    assert (
        opened["leniency"] == "repeat" and opened["penalty_case"] is True and opened["status"] == "escalated"
    )
    assert "立案" in opened["leniency_zh"]
    assert escalated["notice_id"] == f"{second['alert_id']}:escalated:1" and escalated["penalty_case"] is True
    assert escalated["reason"].startswith(f"repeat offence: alert {first['alert_id']}")
    # In the inbox (above) and pushed on every channel the enterprise has, like the opening notice.
    for notice in (opened, escalated):
        pushed = await rows(
            pool, "SELECT channel FROM outbox WHERE notice_id=%s ORDER BY channel", notice["notice_id"]
        )
        assert pushed == [("mqtt_notice",), ("webhook",)]

    await submit(pool, site, second["alert_id"])
    closed = await act(pool, lifecycle.verify, second["alert_id"], actor=OPERATOR, policy=POLICY)
    assert closed["disposition"] == "penalty"
    assert await rows(
        pool, "SELECT count(*) FROM follow_up_visits WHERE alert_id=%s", second["alert_id"]
    ) == [(1,)]


async def test_an_offence_outside_the_look_back_is_a_first_offence_again(pool, site):
    first = await open_alert(pool, violation(site, at=datetime.now(UTC) - timedelta(days=800)))
    await submit(pool, site, first["alert_id"])
    await act(pool, lifecycle.verify, first["alert_id"], actor=OPERATOR, policy=POLICY)
    again = await open_alert(pool, violation(site))
    assert again["leniency"] == "first_offence" and again["status"] == "open"


async def test_a_code_off_the_leniency_list_is_an_instant_warning_and_ends_corrected(pool, site):
    a = await open_alert(pool, violation(site, "KITCHEN_RODENT"))
    assert a["leniency"] == "not_eligible" and a["tier"] == 1
    [(_, notice)] = await notices(pool, a["alert_id"])
    assert notice["instant_warning"] is True and notice["first_offence_warning"] is False
    await submit(pool, site, a["alert_id"], "pest control visit, holes sealed")
    closed = await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    assert (closed["disposition"], closed["penalty_case"]) == ("corrected", False)


async def test_the_deadline_timer_of_the_alerts_service_fires_from_the_database(pool, site, settings, uid):
    from alerts.service import AlertService

    a = await open_alert(pool, violation(site))
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET deadline = now() - interval '1 second' WHERE alert_id=%s", (a["alert_id"],)
        )
    s = settings.model_copy(update={"timer_interval_s": 0.2})
    service = AlertService(s)
    service.group_id = f"vigil-alerts-{uid}"
    async with service:
        deadline = time.monotonic() + 30
        while (await alert(pool, a["alert_id"]))["status"] != "escalated":
            assert time.monotonic() < deadline, "the timer never escalated the overdue alert"
            await asyncio.sleep(0.2)
    assert (await alert(pool, a["alert_id"]))["assignee"] == site.staff["C"]


async def test_two_timers_scanning_at_once_escalate_each_alert_once(pool, site):
    ids = []
    for i in range(6):
        a = await open_alert(pool, violation(site, source=f"cam-{i}"))
        ids.append(a["alert_id"])
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET deadline = now() - interval '1 minute' WHERE alert_id = ANY(%s)", (ids,)
        )

    async def scan() -> list[str]:
        fired: list[str] = []
        for _ in range(4):
            async with pool.connection() as conn, conn.transaction():
                fired += [f for f in await fire_due(conn, POLICY, limit=2) if f in ids]
        return fired

    one, two = await asyncio.gather(scan(), scan())
    assert sorted(one + two) == sorted(ids)  # every alert once, none twice
    counts = await rows(
        pool,
        "SELECT count(*) FROM alert_audit WHERE alert_id = ANY(%s) AND action='escalated' GROUP BY alert_id",
        ids,
    )
    assert counts == [(1,)] * 6


# --- assignment ----------------------------------------------------------------------------------


async def set_away(pool, staff_id: str, away: bool = True) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE staff SET away=%s WHERE staff_id=%s", (away, staff_id))


async def test_new_alerts_go_to_b_when_a_is_away_and_to_c_when_both_are(pool, site):
    await set_away(pool, site.staff["A"])
    b = await open_alert(pool, violation(site, source="cam-b"))
    assert (b["assignee"], b["assigned_slot"]) == (site.staff["B"], "B")
    await set_away(pool, site.staff["B"])
    c = await open_alert(pool, violation(site, source="cam-c"))
    assert (c["assignee"], c["assigned_slot"]) == (site.staff["C"], "C")
    await set_away(pool, site.staff["A"], away=False)
    a = await open_alert(pool, violation(site, source="cam-a"))
    assert a["assigned_slot"] == "A"


async def test_a_difficult_alert_goes_to_the_specialist_and_can_be_reassigned(pool, site):
    a = await open_alert(pool, violation(site))
    flagged = await act(
        pool, lifecycle.flag_difficult, a["alert_id"], actor=OPERATOR, reason="owner disputes it"
    )
    assert (flagged["difficult"], flagged["assignee"], flagged["status"]) == (True, site.staff["C"], "open")
    moved = await act(pool, lifecycle.assign, a["alert_id"], actor=OPERATOR, staff_id=site.staff["B"])
    assert (moved["assignee"], moved["assigned_slot"]) == (site.staff["B"], "B")
    with pytest.raises(InvalidRequest, match="no staff member"):
        await act(pool, lifecycle.assign, a["alert_id"], actor=OPERATOR, staff_id="nobody")
    assert [t[0] for t in await trail(pool, a["alert_id"])] == ["opened", "flagged_difficult", "assigned"]


async def test_a_site_without_handlers_leaves_the_alert_unassigned(pool, site, uid):
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, 'store room')",
            (f"bare-{uid}", site.enterprise_id),
        )
    bare = Site(site.enterprise_id, f"bare-{uid}", {})
    a = await open_alert(pool, violation(bare))
    assert a["assignee"] is None and a["assigned_slot"] is None


async def test_a_read_receipt_is_kept_once_audited_and_private_to_the_enterprise(pool, site):
    a = await open_alert(pool, violation(site))
    notice_id = f"{a['alert_id']}:opened"
    async with pool.connection() as conn, conn.transaction():
        with pytest.raises(NotFound):
            await mark_read(conn, notice_id, enterprise_id="someone-else", actor="enterprise:someone-else")
    async with pool.connection() as conn, conn.transaction():
        first = await mark_read(
            conn, notice_id, enterprise_id=site.enterprise_id, actor=site.enterprise_actor()
        )
    async with pool.connection() as conn, conn.transaction():
        again = await mark_read(
            conn, notice_id, enterprise_id=site.enterprise_id, actor=site.enterprise_actor()
        )
    assert again == first
    assert await rows(pool, "SELECT read_at FROM notices WHERE notice_id=%s", notice_id) == [(first,)]
    assert [t[0] for t in await trail(pool, a["alert_id"])] == ["opened", "notice_read"]
