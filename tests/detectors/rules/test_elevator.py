"""Elevator (docs/devices.md, "elevator"): trapped passengers, door zone, doors, travel, speed."""

from __future__ import annotations

from tests.detectors.rules.support import Rig, cs, ms

TRAPPED = "ELEVATOR_TRAPPED_PASSENGER"
STOPPED = "ELEVATOR_STOP_OUTSIDE_DOOR_ZONE"
DOOR_MOVING = "ELEVATOR_MOVING_DOOR_OPEN"
TOP, BOTTOM = "ELEVATOR_OVER_TRAVEL_TOP", "ELEVATOR_OVER_TRAVEL_BOTTOM"
OVERSPEED = "ELEVATOR_OVERSPEED"
REOPEN = "ELEVATOR_DOOR_REOPEN_REPEATED"

LEVEL = {"speed_mps": 0.0, "position_m": 0.0, "door_open": 0.0, "in_door_zone": 1.0, "passenger": 0.0}


def car(rig: Rig, at: float, **change: float) -> list:
    return rig.t(at, **{**LEVEL, **change})


def test_stopped_between_floors_with_a_passenger_for_30_s_is_a_trapped_passenger():
    rig = Rig("elevator")
    stuck = {"speed_mps": 0.02, "position_m": 13.0, "in_door_zone": 0.0, "passenger": 1.0}
    for at in range(30):
        car(rig, at, **stuck)
    assert rig.log == []  # 29 s
    [v] = car(rig, 30, **stuck)
    assert (v.code, v.severity, v.window_start) == (TRAPPED, "critical", ms(0))
    assert "passenger 1" in v.summary


def test_trapped_clears_only_when_level_and_the_door_open():
    rig = Rig("elevator")
    stuck = {"position_m": 13.0, "in_door_zone": 0.0, "passenger": 1.0}
    for at in range(0, 40, 5):
        car(rig, at, **stuck)
    assert cs(rig.log) == [(TRAPPED, "active")]
    assert car(rig, 45, in_door_zone=1.0, passenger=1.0) == []  # levelled, door still shut
    assert car(rig, 50, in_door_zone=0.0, passenger=0.0) == []  # the load sensor alone: no
    assert cs(car(rig, 60, in_door_zone=1.0, door_open=1.0, passenger=1.0)) == [(TRAPPED, "cleared")]


def test_stopped_outside_the_door_zone_without_a_passenger():
    rig = Rig("elevator")
    for at in range(0, 35, 5):
        car(rig, at, position_m=13.0, in_door_zone=0.0)
    assert cs(rig.log) == [(STOPPED, "active")]
    assert rig.log[0].severity == "major" and rig.log[0].detected_at == ms(30)
    assert cs(car(rig, 40, position_m=14.0, in_door_zone=1.0)) == [(STOPPED, "cleared")]  # level


def test_a_car_that_stops_briefly_or_at_a_landing_raises_nothing():
    rig = Rig("elevator")
    for at in range(0, 120, 5):
        if at % 20 == 0:
            car(rig, at, speed_mps=1.0, in_door_zone=0.0)  # moving between floors
        else:
            car(rig, at, in_door_zone=1.0, passenger=1.0, door_open=1.0)  # at a landing
    assert rig.log == []
    for at in range(120, 145, 5):  # stopped outside the zone for 24 s, then moves on
        car(rig, at, in_door_zone=0.0, passenger=1.0)
    car(rig, 145, speed_mps=1.0, in_door_zone=0.0, passenger=1.0)
    car(rig, 200, in_door_zone=1.0)
    assert rig.log == []


def test_trapped_found_by_the_clock_when_the_car_goes_quiet():
    rig = Rig("elevator")
    car(rig, 0, position_m=13.0, in_door_zone=0.0, passenger=1.0)
    assert rig.tick(29) == [] and rig.tick(30) == []  # at the deadline a reading would decide
    [v] = rig.tick(30.001)
    assert (v.code, v.detected_at) == (TRAPPED, ms(30))


def test_moving_with_the_door_open_for_a_second():
    rig = Rig("elevator")
    car(rig, 0, speed_mps=0.5, door_open=1.0, in_door_zone=0.0)
    assert car(rig, 0.5, speed_mps=0.5, door_open=1.0, in_door_zone=0.0) == []
    [v] = car(rig, 1.0, speed_mps=0.5, door_open=1.0, in_door_zone=0.0)
    assert (v.code, v.severity, v.window_start) == (DOOR_MOVING, "critical", ms(0))
    assert cs(car(rig, 2.0, speed_mps=0.5, door_open=0.0, in_door_zone=0.0)) == [(DOOR_MOVING, "cleared")]


def test_door_open_while_creeping_or_only_for_a_moment_is_not_moving_with_the_door_open():
    rig = Rig("elevator")
    car(rig, 0, speed_mps=0.1, door_open=1.0)  # 0.1 m/s is not moving (> 0.1)
    car(rig, 1, speed_mps=0.1, door_open=1.0)
    car(rig, 2, speed_mps=0.5, door_open=1.0)
    car(rig, 2.9, speed_mps=0.5, door_open=0.0)
    car(rig, 4, speed_mps=0.5, door_open=0.0)
    assert rig.log == []


def test_over_travel_at_the_top_and_the_bottom_raise_at_once():
    rig = Rig("elevator")
    assert car(rig, 0, speed_mps=0.3, position_m=60.3) == []  # the limit itself
    assert cs(car(rig, 1, speed_mps=0.3, position_m=60.31)) == [(TOP, "active")]
    assert cs(car(rig, 2, position_m=59.0)) == [(TOP, "cleared")]
    assert car(rig, 3, speed_mps=0.3, position_m=-0.3) == []
    assert cs(car(rig, 4, speed_mps=0.3, position_m=-0.31)) == [(BOTTOM, "active")]
    assert rig.log[-1].severity == "critical"


def test_top_of_travel_comes_from_the_attributes():
    rig = Rig("elevator", {"top_m": 30})
    assert cs(car(rig, 0, position_m=30.4)) == [(TOP, "active")]
    assert "position_m > 30.3" in rig.log[0].summary


def test_overspeed_above_115_percent_of_the_rating_for_a_second():
    rig = Rig("elevator")  # 1.75 m/s rated: overspeed above 2.0125
    for at in range(5):
        car(rig, at, speed_mps=2.01, in_door_zone=0.0)
    assert rig.log == []
    car(rig, 5, speed_mps=2.02, in_door_zone=0.0)
    assert car(rig, 5.5, speed_mps=2.03, in_door_zone=0.0) == []
    assert cs(car(rig, 6, speed_mps=2.03, in_door_zone=0.0)) == [(OVERSPEED, "active")]
    assert cs(car(rig, 7, speed_mps=1.7, in_door_zone=0.0)) == [(OVERSPEED, "cleared")]


def test_rated_speed_from_the_attributes():
    rig = Rig("elevator", {"rated_speed_mps": 2.5})  # overspeed above 2.875
    for at in range(3):
        car(rig, at, speed_mps=2.8, in_door_zone=0.0)
    assert rig.log == []
    for at in range(3, 6):
        car(rig, at, speed_mps=2.9, in_door_zone=0.0)
    assert cs(rig.log) == [(OVERSPEED, "active")]
    assert rig.log[0].evidence["limits"] == {"rated_speed_mps": 2.5}


def test_five_door_reopens_within_two_minutes():
    rig = Rig("elevator")
    for at in (0, 30, 60, 90):
        assert rig.ev(at, "door_reopen") == []
    [v] = rig.ev(120, "door_reopen")  # the fifth within 120 s
    assert (v.code, v.severity, v.window_start, v.detected_at) == (REOPEN, "minor", ms(0), ms(120))
    assert rig.ev(150, "door_reopen") == []  # the same episode goes on
    assert rig.tick(269) == []
    [c] = rig.tick(270)  # 120 s without a reopen
    assert (c.state, c.violation_id) == ("cleared", v.violation_id)


def test_four_reopens_or_five_spread_over_more_than_two_minutes_raise_nothing():
    rig = Rig("elevator")
    for at in (0, 10, 20, 30):
        rig.ev(at, "door_reopen")
    for at in (200, 231, 261, 291, 321):  # 121 s from the first to the fifth
        rig.ev(at, "door_reopen")
    assert cs(rig.log, REOPEN) == []
    rig.ev(330, "door_reopen")  # now 5 within 120 s: 231 ... 330
    assert [v.window_start for v in rig.log if v.code == REOPEN] == [ms(231)]


def test_a_duplicated_event_is_counted_once():
    rig = Rig("elevator")
    for at in (0, 10, 20, 30):
        rig.ev(at, "door_reopen")
        rig.ev(at, "door_reopen")  # the same message delivered twice
    assert rig.log == []
    assert rig.engine.stats.duplicates == 4
