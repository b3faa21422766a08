"""Boiler and pressure vessel (docs/devices.md, "boiler", "pressure_vessel")."""

from __future__ import annotations

from tests.detectors.rules.support import Rig, cs, ms

BOILER_PRESSURE, LOW_WATER, HOT = "BOILER_OVER_PRESSURE", "BOILER_LOW_WATER", "BOILER_OVER_TEMPERATURE"
VESSEL_PRESSURE, VALVE = "PRESSURE_VESSEL_OVER_PRESSURE", "PRESSURE_VESSEL_SAFETY_VALVE_LIFT"


def seconds(rig: Rig, metric: str, values: list[float], start: int = 0, step: int = 1) -> list:
    return rig.series(metric, [(start + i * step, v) for i, v in enumerate(values)])


def test_boiler_over_pressure_for_10_s_clears_below_95_percent():
    rig = Rig("boiler")
    assert seconds(rig, "pressure_mpa", [1.3] * 10) == []  # 9 s
    [v] = rig.t(10, pressure_mpa=1.3)
    assert (v.code, v.severity, v.window_start) == (BOILER_PRESSURE, "critical", ms(0))
    assert seconds(rig, "pressure_mpa", [1.25, 1.2, 1.19, 1.1875], start=11) == []  # >= 1.1875
    assert cs(rig.t(15, pressure_mpa=1.18)) == [(BOILER_PRESSURE, "cleared")]


def test_boiler_at_its_rating_is_not_over_pressure():
    rig = Rig("boiler")
    assert seconds(rig, "pressure_mpa", [1.25] * 60) == []


def test_boiler_rating_from_the_attributes_moves_both_limits():
    rig = Rig("boiler", {"rated_pressure_mpa": 1.6})
    assert seconds(rig, "pressure_mpa", [1.5] * 20) == []
    seconds(rig, "pressure_mpa", [1.7] * 11, start=20)
    assert cs(rig.log) == [(BOILER_PRESSURE, "active")]
    assert rig.t(40, pressure_mpa=1.53) == []  # 95 % of 1.6 = 1.52
    assert cs(rig.t(41, pressure_mpa=1.51)) == [(BOILER_PRESSURE, "cleared")]


def test_boiler_low_water_for_10_s_clears_above_the_minimum_plus_20_mm():
    rig = Rig("boiler")
    seconds(rig, "water_level_mm", [49.9] * 11)
    assert cs(rig.log) == [(LOW_WATER, "active")]
    assert seconds(rig, "water_level_mm", [55, 70], start=11) == []
    assert cs(rig.t(13, water_level_mm=70.1)) == [(LOW_WATER, "cleared")]


def test_boiler_low_water_short_dip_and_own_minimum():
    rig = Rig("boiler")
    seconds(rig, "water_level_mm", [40] * 5 + [80] + [40] * 5)
    assert rig.log == []
    own = Rig("boiler", {"min_water_level_mm": 100})
    seconds(own, "water_level_mm", [90] * 11)
    assert cs(own.log) == [(LOW_WATER, "active")]


def test_boiler_over_temperature_for_30_s_clears_5_degrees_below():
    rig = Rig("boiler")
    seconds(rig, "temperature_c", [195] * 30)
    assert rig.log == []
    rig.t(30, temperature_c=195)
    assert cs(rig.log) == [(HOT, "active")] and rig.log[0].severity == "major"
    assert rig.t(31, temperature_c=189) == []
    assert cs(rig.t(32, temperature_c=188.9)) == [(HOT, "cleared")]
    own = Rig("boiler", {"max_temperature_c": 150})
    seconds(own, "temperature_c", [160] * 31)
    assert cs(own.log) == [(HOT, "active")]


def test_vessel_over_pressure_for_10_s_clears_below_95_percent():
    rig = Rig("pressure_vessel")
    seconds(rig, "pressure_mpa", [1.6] * 20)  # at the rating: fine
    seconds(rig, "pressure_mpa", [1.61] * 11, start=20)
    assert cs(rig.log) == [(VESSEL_PRESSURE, "active")] and rig.log[0].window_start == ms(20)
    assert rig.t(40, pressure_mpa=1.52) == []
    assert cs(rig.t(41, pressure_mpa=1.5)) == [(VESSEL_PRESSURE, "cleared")]
    own = Rig("pressure_vessel", {"rated_pressure_mpa": 2.5})
    seconds(own, "pressure_mpa", [2.0] * 30)
    assert own.log == []


def test_safety_valve_lift_raises_at_once_and_clears_10_minutes_after_the_last():
    rig = Rig("pressure_vessel", {"heartbeat_s": 3600})
    [v] = rig.ev(0, "safety_valve_lift")
    assert (v.code, v.severity, v.window_start, v.detected_at) == (VALVE, "major", ms(0), ms(0))
    assert rig.ev(300, "safety_valve_lift") == []  # the same episode
    assert rig.tick(600) == [] and rig.tick(899.999) == []
    [c] = rig.tick(900)
    assert (c.state, c.violation_id, c.detected_at) == ("cleared", v.violation_id, ms(900))
    [again] = rig.ev(1000, "safety_valve_lift")  # a new episode, a new id
    assert again.violation_id != v.violation_id and again.window_start == ms(1000)


def test_safety_valve_clear_is_found_by_the_next_message_without_a_tick():
    rig = Rig("pressure_vessel")
    rig.ev(0, "safety_valve_lift")
    out = seconds(rig, "pressure_mpa", [1.0] * 4, start=240, step=240)  # 240 ... 960 s
    assert [(v.code, v.state, v.detected_at) for v in out] == [(VALVE, "cleared", ms(600))]
