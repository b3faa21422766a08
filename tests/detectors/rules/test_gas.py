"""Gas filling station and kitchen gas detector (docs/devices.md, "gas_filling", "gas_detector")."""

from __future__ import annotations

from tests.detectors.rules.support import NIGHT, Rig, cs, ms
from vigil.events import violation_id

OVERDUE, LEAK = "GAS_CYLINDER_INSPECTION_OVERDUE", "KITCHEN_GAS_LEAK"
DAY_START = 1_762_963_200_000  # 2025-11-13 00:00 in Shanghai (16:00 UTC the day before)


def fill(rig: Rig, at: float, cylinder: str, due: str) -> list:
    return rig.ev(at, "filling_started", cylinder_id=cylinder, inspection_due=due)


# --- gas filling ------------------------------------------------------------------------------------


def test_filling_a_cylinder_past_its_inspection_date():
    rig = Rig("gas_filling")
    [v] = fill(rig, 0, "CYL-1", "2025-11-12")  # the day before the filling (2025-11-13)
    assert (v.code, v.state, v.severity) == (OVERDUE, "active", "major")
    assert v.violation_id == violation_id("device", "d1", f"{OVERDUE}/CYL-1", DAY_START)
    assert "CYL-1" in v.summary and "2025-11-12" in v.summary
    assert v.evidence["data"] == {"cylinder_id": "CYL-1", "inspection_due": "2025-11-12"}


def test_due_today_or_later_is_not_overdue():
    rig = Rig("gas_filling")
    assert fill(rig, 0, "CYL-1", "2025-11-13") + fill(rig, 10, "CYL-2", "2027-01-01") == []


def test_one_violation_per_cylinder_and_day():
    rig = Rig("gas_filling")
    fill(rig, 0, "CYL-1", "2024-01-01")
    fill(rig, 60, "CYL-1", "2024-01-01")  # filled again the same day
    fill(rig, 120, "CYL-2", "2024-01-01")
    fill(rig, 86_400, "CYL-1", "2024-01-01")  # the next day
    assert cs(rig.log, OVERDUE) == [(OVERDUE, "active")] * 3
    assert len({v.violation_id for v in rig.log if v.code == OVERDUE}) == 3
    # Replayed, the same fillings give the same ids.
    again = Rig("gas_filling")
    for at, cyl in ((0, "CYL-1"), (120, "CYL-2"), (86_400, "CYL-1")):
        fill(again, at, cyl, "2024-01-01")
    assert [v.violation_id for v in again.log if v.code == OVERDUE] == [
        v.violation_id for v in rig.log if v.code == OVERDUE
    ]


def test_a_late_filling_is_judged_and_leaves_the_days_episodes_alone():
    """A filling that arrives after a newer message (a buffered backlog) is still a filling: the
    order-free date rule judges it; the rules that depend on order do not see it."""
    rig = Rig("gas_filling")
    fill(rig, 3_600, "CYL-1", "2024-01-01")  # the newest message of the day so far
    [late] = fill(rig, 60, "CYL-2", "2024-01-01")  # stamped earlier, arriving later
    assert late.violation_id == violation_id("device", "d1", f"{OVERDUE}/CYL-2", DAY_START)
    assert rig.engine.stats.late == 1
    # The day's own dedupe still holds: CYL-1 again the same day is not a second violation.
    assert fill(rig, 3_700, "CYL-1", "2024-01-01") == []
    # A late copy of what was already judged gives the same id, which the alert store absorbs.
    [again] = fill(rig, 120, "CYL-2", "2024-01-01")
    assert again.violation_id == late.violation_id


def test_the_date_is_the_site_local_date():
    # 14 h after T0: 2025-11-13 16:13 UTC, but already 2025-11-14 00:13 in Shanghai.
    rig = Rig("gas_filling")
    assert cs(fill(rig, 14 * 3600, "CYL-1", "2025-11-13")) == [(OVERDUE, "active")]
    utc = Rig("gas_filling", {"timezone": "UTC"})
    assert fill(utc, 14 * 3600, "CYL-1", "2025-11-13") == []


def test_unreadable_filling_data_is_counted_not_judged():
    rig = Rig("gas_filling")
    out = rig.ev(0, "filling_started", cylinder_id="C", inspection_due="13/11/2025")
    out += rig.ev(1, "filling_started", cylinder_id="C")
    out += rig.ev(2, "filling_started", cylinder_id="C", inspection_due=20251113)
    assert out == [] and rig.engine.stats.bad_event_data == 3
    # Without a cylinder id the filling is still judged, once a day for all such cylinders.
    assert cs(rig.ev(3, "filling_started", inspection_due="2020-01-01")) == [(OVERDUE, "active")]


# --- kitchen gas detector ------------------------------------------------------------------------------


def test_gas_leak_by_day_is_major_after_10_s():
    rig = Rig("gas_detector")
    rig.series("gas_lel_pct", [(s, 25.0) for s in range(10)])
    assert rig.log == []
    [v] = rig.t(10, gas_lel_pct=25)
    assert (v.code, v.severity, v.window_start) == (LEAK, "major", ms(0))


def test_gas_leak_clears_below_10_not_below_the_alarm_level():
    rig = Rig("gas_detector")
    rig.series("gas_lel_pct", [(s, 25.0) for s in range(11)])
    assert rig.t(11, gas_lel_pct=15) == [] and rig.t(12, gas_lel_pct=10) == []
    assert cs(rig.t(13, gas_lel_pct=9.9)) == [(LEAK, "cleared")]


def test_gas_leak_by_day_is_upgraded_to_critical_after_10_minutes_active():
    rig = Rig("gas_detector")
    rig.series("gas_lel_pct", [(s, 30.0) for s in range(0, 610, 10)])  # raised at 10 s
    assert cs(rig.log) == [(LEAK, "active")]
    [up] = rig.t(610, gas_lel_pct=30)
    raised = rig.log[0]
    assert (up.code, up.state, up.severity) == (LEAK, "active", "critical")
    assert up.violation_id == f"{raised.violation_id}-critical"  # its own id: a new upgrade
    assert up.window_start == raised.window_start and up.detected_at == ms(610)
    assert up.evidence["escalated_from"] == raised.violation_id
    # No second upgrade; the clear carries the raise's id.
    rig.series("gas_lel_pct", [(s, 30.0) for s in range(620, 1300, 10)])
    [c] = rig.t(1300, gas_lel_pct=5)
    assert (c.state, c.violation_id, c.severity) == ("cleared", raised.violation_id, "critical")
    assert cs(rig.log) == [(LEAK, "active"), (LEAK, "active"), (LEAK, "cleared")]


def test_gas_leak_escalation_is_found_by_the_clock_too():
    rig = Rig("gas_detector", {"heartbeat_s": 3600})
    rig.series("gas_lel_pct", [(0, 30.0), (10, 30.0)])
    assert rig.tick(609) == []
    [up] = rig.tick(610)
    assert up.severity == "critical" and up.detected_at == ms(610)


def test_gas_leak_cleared_before_10_minutes_is_not_upgraded():
    rig = Rig("gas_detector")
    rig.series("gas_lel_pct", [(s, 30.0) for s in range(0, 300, 10)] + [(300, 5.0)])
    rig.series("gas_lel_pct", [(s, 5.0) for s in range(310, 1000, 10)])
    rig.tick(2000)
    assert [(v.state, v.severity) for v in rig.log if v.code == LEAK] == [
        ("active", "major"),
        ("cleared", "major"),
    ]


def test_gas_leak_at_night_is_critical_at_once_and_not_upgraded():
    rig = Rig("gas_detector")
    [v] = rig.t(NIGHT, gas_lel_pct=21)
    assert (v.code, v.severity, v.detected_at, v.window_start) == (LEAK, "critical", ms(NIGHT), ms(NIGHT))
    assert "at night" in v.summary
    rig.series("gas_lel_pct", [(NIGHT + s, 30.0) for s in range(10, 1300, 10)])
    rig.tick(NIGHT + 2000)
    assert cs(rig.log, LEAK) == [(LEAK, "active")]


def test_night_hours_and_timezone_come_from_the_attributes():
    # 10:13 in Shanghai is 02:13 UTC: night for a site on UTC with the default 22:00-06:00.
    utc = Rig("gas_detector", {"timezone": "UTC"})
    assert [v.severity for v in utc.t(0, gas_lel_pct=25)] == ["critical"]
    # A kitchen whose night is 10:00-11:00 local.
    own = Rig("gas_detector", {"night_start": "10:00", "night_end": "11:00"})
    assert [v.severity for v in own.t(0, gas_lel_pct=25)] == ["critical"]
    # 22:13 in Shanghai is daytime for a night of 23:00-05:00.
    late = Rig("gas_detector", {"night_start": "23:00", "night_end": "05:00"})
    assert late.t(NIGHT, gas_lel_pct=25) == []
    # Nonsense attributes: the profile's schedule.
    bad = Rig("gas_detector", {"timezone": "Mars/Olympus", "night_start": "25:99"})
    assert [v.severity for v in bad.t(NIGHT, gas_lel_pct=25)] == ["critical"]


def test_a_leak_that_starts_by_day_and_runs_into_the_night_is_raised_critical():
    rig = Rig("gas_detector")
    start = NIGHT - 15 * 60 + 5  # 21:58:25 local, 5 s before 21:58:30 ... raised at 10 s: still day
    rig.series("gas_lel_pct", [(start, 30.0), (start + 5, 30.0)])
    assert rig.log == []
    late = Rig("gas_detector")
    begin = 12 * 3600 - 13 * 60 - 25  # 21:59:55 local
    late.series("gas_lel_pct", [(begin, 30.0), (begin + 5, 30.0)])  # 22:00:00: night, at once
    assert [(v.severity, v.window_start) for v in late.log] == [("critical", ms(begin))]


def test_alarm_level_from_the_attributes():
    rig = Rig("gas_detector", {"alarm_lel_pct": 40})
    rig.series("gas_lel_pct", [(s, 30.0) for s in range(20)])
    assert rig.log == []
