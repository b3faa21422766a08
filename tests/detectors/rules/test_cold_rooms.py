"""Freezer and chiller (docs/devices.md, "freezer, chiller"): temperature, humidity, door."""

from __future__ import annotations

from tests.detectors.rules.support import MIN, Rig, cs, ms, of
from vigil.events import violation_id

WARM = "COLD_CHAIN_FREEZER_WARM"
CHILLER = "COLD_CHAIN_CHILLER_OUT_OF_RANGE"
HUMIDITY = "COLD_CHAIN_HUMIDITY_OUT_OF_RANGE"
DOOR = "COLD_CHAIN_DOOR_LEFT_OPEN"


def every_minute(rig: Rig, metric: str, start_min: int, values: list[float]) -> list:
    return rig.series(metric, [((start_min + i) * MIN, v) for i, v in enumerate(values)])


# --- freezer temperature ---------------------------------------------------------------------------


def test_freezer_warm_for_15_minutes_raises_at_the_boundary_not_before():
    rig = Rig("freezer")
    out = every_minute(rig, "temperature", 0, [-20] + [-15] * 15)  # warm from 1 to 15 min: 14 min
    assert out == []
    [v] = rig.t(16 * MIN, temperature=-15)  # 15 min since the first warm reading
    assert (v.code, v.state, v.severity) == (WARM, "active", "major")
    assert v.window_start == ms(MIN) and v.detected_at == ms(16 * MIN)
    assert v.violation_id == violation_id("device", "d1", WARM, ms(MIN))
    assert "temperature -15 °C" in v.summary and "15 min" in v.summary
    assert v.evidence["limits"] == {"max_temp_c": -18, "duration_s": 900}


def test_freezer_exactly_at_the_limit_is_not_warm():
    rig = Rig("freezer")
    assert every_minute(rig, "temperature", 0, [-18.0] * 30) == []


def test_short_excursion_such_as_a_door_opening_raises_nothing():
    rig = Rig("freezer")
    assert every_minute(rig, "temperature", 0, [-20, -10, -12, -14, -16, -19] + [-19] * 30) == []


def test_clears_only_below_the_limit_minus_half_a_degree_and_once():
    rig = Rig("freezer")
    every_minute(rig, "temperature", 0, [-10] * 16)
    assert cs(rig.log) == [(WARM, "active")]
    out = every_minute(rig, "temperature", 16, [-17.8, -18.0, -18.5, -18.4])  # all inside the band
    assert out == []
    [cleared] = rig.t(20 * MIN, temperature=-18.6)
    assert cleared.state == "cleared" and cleared.violation_id == rig.log[0].violation_id
    assert cleared.detected_at == ms(20 * MIN) and cleared.window_start == ms(0)
    assert every_minute(rig, "temperature", 21, [-19] * 3) == []


def test_a_flapping_sensor_around_the_limit_raises_one_alert():
    """Noise of ±0.3 °C around -18 for two hours: one raise, one clear, nothing in between."""
    rig = Rig("freezer")
    every_minute(rig, "temperature", 0, [-17.7 if i % 2 else -18.3 for i in range(120)])
    every_minute(rig, "temperature", 120, [-19.0])
    assert cs(rig.log) == [(WARM, "active"), (WARM, "cleared")]
    assert rig.log[0].violation_id == rig.log[1].violation_id
    # The count did not restart on each dip below -18 (into the band): raised by the first warm
    # reading once 15 minutes had passed since the first (at 16 min the reading was in the band).
    assert rig.log[0].window_start == ms(MIN) and rig.log[0].detected_at == ms(17 * MIN)


def test_a_pending_episode_ends_after_the_duration_spent_in_the_band():
    """A blip above the limit, then hours in the band (-18.3: compliant): never raised, and a later
    blip starts a new count rather than raising at once."""
    rig = Rig("freezer")
    every_minute(rig, "temperature", 0, [-17.9] + [-18.3] * 60 + [-17.9] + [-18.3] * 5)
    assert rig.log == []
    state = rig.engine.device("d1")
    assert state is not None and state.states[0].since == ms(61 * MIN)


def test_raised_by_the_clock_when_the_readings_stop():
    """The last reading was warm and nothing has said otherwise: the tick raises at the deadline."""
    rig = Rig("freezer", {"heartbeat_s": 3600})
    rig.t(0, temperature=-10)
    assert rig.tick(899) == []
    [v] = rig.tick(901)
    assert v.code == WARM and v.detected_at == ms(900)
    # The next reading, whatever it says, does not raise it again.
    assert rig.t(960, temperature=-9) == []


def test_a_timer_fires_the_same_with_or_without_a_tick():
    """The deadline passes between two readings: a tick or the next reading finds it, same result."""
    readings = [(0, -10.0), (600, -10.0), (1200, -20.0)]
    ticked, plain = Rig("freezer"), Rig("freezer")
    for at, temp in readings:
        ticked.tick(at)
        ticked.t(at, temperature=temp)
        plain.t(at, temperature=temp)
    ticked.tick(1000)  # too late to matter: already fired by the reading at 1200
    assert cs(ticked.log, WARM) == cs(plain.log, WARM) == [(WARM, "active"), (WARM, "cleared")]
    assert [(v.violation_id, v.detected_at) for v in of(ticked.log, WARM)] == [
        (v.violation_id, v.detected_at) for v in of(plain.log, WARM)
    ]
    assert of(plain.log, WARM)[0].detected_at == ms(900)  # the deadline, not the revealing reading


def test_device_attributes_override_the_profile_limits():
    rig = Rig("freezer", {"max_temp_c": -25, "duration_s": 60})  # a blast freezer
    out = every_minute(rig, "temperature", 0, [-20, -20])
    assert cs(out) == [(WARM, "active")]
    assert out[0].evidence["limits"] == {"max_temp_c": -25, "duration_s": 60}
    assert "(temperature > -25)" in out[0].summary
    assert cs(rig.t(2 * MIN, temperature=-25.4)) == []  # band: above -25.5
    assert cs(rig.t(3 * MIN, temperature=-25.6)) == [(WARM, "cleared")]


def test_malformed_attributes_fall_back_to_the_defaults():
    rig = Rig("freezer", {"max_temp_c": "cold", "duration_s": True})
    every_minute(rig, "temperature", 0, [-17] * 16)
    assert cs(rig.log) == [(WARM, "active")]
    assert rig.log[0].detected_at == ms(15 * MIN)


def test_replay_of_the_same_readings_gives_the_same_violation_ids():
    def run() -> list[str]:
        rig = Rig("freezer")
        every_minute(rig, "temperature", 0, [-10] * 16 + [-20])
        return [v.violation_id for v in rig.log]

    assert run() == run() and len(run()) == 2


def test_devices_are_independent():
    a = Rig("freezer", device="a")
    b = Rig("freezer", device="b", engine=a.engine)
    for i in range(17):
        a.t(i * MIN, temperature=-10)
        b.t(i * MIN, temperature=-19)
    assert [(v.source_id, v.code) for v in a.log + b.log] == [("a", WARM)]


# --- chiller ----------------------------------------------------------------------------------------


def test_chiller_too_warm_and_too_cold_both_raise():
    warm, cold = Rig("chiller"), Rig("chiller")
    every_minute(warm, "temperature", 0, [8.1] * 16)
    every_minute(cold, "temperature", 0, [-0.1] * 16)
    assert cs(warm.log) == cs(cold.log) == [(CHILLER, "active")]
    assert warm.log[0].evidence["highest"] == 8.1 and cold.log[0].evidence["lowest"] == -0.1


def test_chiller_inside_its_range_raises_nothing():
    rig = Rig("chiller")
    assert every_minute(rig, "temperature", 0, [0.0, 8.0, 4.0] * 20) == []


def test_chiller_clears_half_a_degree_inside():
    rig = Rig("chiller")
    every_minute(rig, "temperature", 0, [9.0] * 16)
    assert every_minute(rig, "temperature", 16, [7.6, 7.9, 8.0]) == []
    assert cs(rig.t(19 * MIN, temperature=7.5)) == [(CHILLER, "cleared")]
    every_minute(rig, "temperature", 20, [-1.0] * 16)
    assert every_minute(rig, "temperature", 36, [0.4]) == []
    assert cs(rig.t(37 * MIN, temperature=0.5)) == [(CHILLER, "cleared")]
    assert cs(rig.log) == [(CHILLER, "active"), (CHILLER, "cleared")] * 2


def test_chiller_attributes_set_its_own_range_and_duration():
    rig = Rig("chiller", {"min_temp_c": 2, "max_temp_c": 5, "duration_s": 120})
    out = every_minute(rig, "temperature", 0, [4, 6, 6.5, 7, 3])
    assert cs(out) == [(CHILLER, "active"), (CHILLER, "cleared")]
    assert out[0].window_start == ms(MIN) and out[0].detected_at == ms(3 * MIN)


# --- humidity ----------------------------------------------------------------------------------------


def test_humidity_outside_60_to_95_for_30_minutes():
    for profile in ("freezer", "chiller"):
        high, low, ok = Rig(profile), Rig(profile), Rig(profile)
        every_minute(high, "humidity", 0, [96] * 30)
        assert high.log == []  # 29 minutes
        high.t(30 * MIN, humidity=96)
        every_minute(low, "humidity", 0, [59] * 31)
        every_minute(ok, "humidity", 0, [60, 95] * 20)
        assert cs(high.log) == cs(low.log) == [(HUMIDITY, "active")], profile
        assert ok.log == []
        assert cs(high.t(31 * MIN, humidity=94)) == [(HUMIDITY, "cleared")]  # no band: back inside


def test_humidity_limits_come_from_attributes():
    rig = Rig("freezer", {"min_humidity": 30, "max_humidity": 50})
    every_minute(rig, "humidity", 0, [55] * 31)
    assert cs(rig.log) == [(HUMIDITY, "active")]


def test_temperature_and_humidity_in_one_reading_are_judged_apart():
    rig = Rig("freezer")
    for i in range(31):
        rig.t(i * MIN, temperature=-10, humidity=99)
    assert cs(rig.log) == [(WARM, "active"), (HUMIDITY, "active")]


# --- door --------------------------------------------------------------------------------------------


def test_door_left_open_for_10_minutes_raises_and_closing_clears():
    rig = Rig("freezer", {"heartbeat_s": 3600})
    rig.ev(0, "door_open")
    assert rig.tick(599.999) == []
    [v] = rig.tick(600)  # open for 10 minutes
    assert (v.code, v.state, v.window_start, v.detected_at) == (DOOR, "active", ms(0), ms(600))
    [c] = rig.ev(700, "door_closed")
    assert (c.state, c.violation_id) == ("cleared", v.violation_id)


def test_door_closed_in_time_raises_nothing_and_reopening_restarts():
    rig = Rig("chiller", {"heartbeat_s": 3600})
    rig.ev(0, "door_open")
    rig.ev(590, "door_closed")
    rig.ev(600, "door_open")
    rig.tick(1199.999)
    assert rig.log == []
    assert cs(rig.tick(1200)) == [(DOOR, "active")]


def test_door_found_open_by_the_next_message_when_nothing_ticks():
    rig = Rig("freezer")
    rig.ev(0, "door_open")
    out = rig.t(299, temperature=-20) + rig.t(598, temperature=-20) + rig.t(897, temperature=-20)
    assert [(v.code, v.detected_at) for v in out] == [(DOOR, ms(600))]


def test_a_repeated_door_open_does_not_restart_the_timer():
    rig = Rig("freezer", {"heartbeat_s": 3600})
    rig.ev(0, "door_open")
    rig.ev(300, "door_open")
    assert rig.tick(599) == []
    assert [v.window_start for v in rig.tick(600)] == [ms(0)]


def test_door_open_limit_from_attributes():
    rig = Rig("freezer", {"door_open_s": 60, "heartbeat_s": 3600})
    rig.ev(0, "door_open")
    assert cs(rig.tick(61)) == [(DOOR, "active")]
