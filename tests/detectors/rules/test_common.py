"""What every device gets, whatever its type: offline and impossible readings; and the engine's
own guarantees: late messages ignored, deterministic ids whatever the ticks, unknown profiles."""

from __future__ import annotations

import random

from detectors.rules import RuleEngine
from tests.detectors.rules.support import BOOK, T0, Rig, cs, ms, of
from vigil.events import Telemetry, violation_id
from vigil.registry import Device

OFFLINE, RANGE, WARM = "DEVICE_OFFLINE", "SENSOR_OUT_OF_RANGE", "COLD_CHAIN_FREEZER_WARM"


# --- offline ----------------------------------------------------------------------------------------


def test_offline_status_raises_at_once_and_the_next_message_clears():
    rig = Rig("boiler")
    rig.t(0, pressure_mpa=1.0)
    [v] = rig.status(10, online=False)
    assert (v.code, v.state, v.severity, v.window_start) == (OFFLINE, "active", "minor", ms(10))
    assert rig.status(11, online=False) == []  # the last will after the device's own goodbye
    [c] = rig.t(20, pressure_mpa=1.0)
    assert (c.code, c.state, c.violation_id, c.detected_at) == (OFFLINE, "cleared", v.violation_id, ms(20))


def test_online_status_clears_offline():
    rig = Rig("elevator")
    rig.status(0, online=False)
    assert cs(rig.status(5, online=True)) == [(OFFLINE, "cleared")]
    assert rig.status(6, online=True) == []


def test_no_message_for_the_heartbeat_is_offline_then_the_next_message_clears():
    rig = Rig("freezer")
    rig.t(0, temperature=-20)
    assert rig.tick(300) == []  # exactly 300 s of silence
    [v] = rig.tick(300.001)
    assert (v.code, v.window_start, v.detected_at) == (OFFLINE, ms(300), ms(300))
    assert rig.tick(900) == []  # reported once
    [c] = rig.t(1000, temperature=-20)
    assert (c.state, c.violation_id) == ("cleared", v.violation_id)


def test_a_silence_noticed_only_by_the_next_message_is_raised_and_cleared_with_the_same_id():
    ticked, quiet = Rig("freezer"), Rig("freezer")
    for rig in (ticked, quiet):
        rig.t(0, temperature=-20)
    ticked.tick(400)
    for rig in (ticked, quiet):
        rig.t(1000, temperature=-20)
    assert cs(quiet.log) == cs(ticked.log) == [(OFFLINE, "active"), (OFFLINE, "cleared")]
    assert [v.violation_id for v in quiet.log] == [v.violation_id for v in ticked.log]
    assert quiet.log[0].window_start == ms(300)


def test_heartbeat_from_the_attributes_and_zero_turns_it_off():
    fast = Rig("chiller", {"heartbeat_s": 60})
    fast.t(0, temperature=4)
    assert cs(fast.tick(61)) == [(OFFLINE, "active")]
    off = Rig("chiller", {"heartbeat_s": 0})
    off.t(0, temperature=4)
    off.t(86_400, temperature=4)
    assert off.tick(200_000) == [] and off.log == []


def test_liveness_runs_on_ingest_time_not_the_device_clock():
    """A device whose clock is an hour behind (or a recorded stream replayed with its old stamps)
    is alive as long as its messages keep arriving."""
    rig = Rig("freezer", skew_s=3600)
    for at in range(0, 1200, 60):
        rig.t(at, temperature=-20)
        rig.tick(at + 3600 + 30)  # ingest time, an hour ahead of the device's stamps
    assert rig.log == []
    assert cs(rig.tick(1140 + 3600 + 301)) == [(OFFLINE, "active")]


def test_one_silent_device_among_talking_ones_goes_offline_on_the_partition_clock():
    engine = RuleEngine(BOOK)
    loud, silent = Rig("boiler", device="loud", engine=engine), Rig("boiler", device="silent", engine=engine)
    silent.t(0, pressure_mpa=1.0)
    for at in range(0, 400, 10):
        loud.t(at, pressure_mpa=1.0)
    out = engine.tick(engine.watermark)  # what the service does after each batch
    assert [(v.source_id, v.code, v.window_start) for v in out] == [("silent", OFFLINE, ms(300))]


def test_a_late_message_still_shows_the_device_is_alive():
    rig = Rig("freezer")
    rig.t(100, temperature=-20)
    rig.status(150, online=False)
    assert cs(rig.t(50, recv=200, temperature=-20)) == [(OFFLINE, "cleared")]  # late, but here


# --- impossible readings ----------------------------------------------------------------------------


def test_a_reading_outside_the_valid_range_is_reported_and_not_judged():
    rig = Rig("freezer", {"duration_s": 60})
    [v] = rig.t(0, temperature=85.0)  # a freezer at 85 °C: the sensor, not the food
    assert (v.code, v.state, v.severity) == (RANGE, "active", "major")
    assert v.evidence["readings"] == {"temperature": 85.0} and v.evidence["valid"] == {
        "temperature": [-60, 60]
    }
    assert "temperature 85 °C outside -60 … 60" in v.summary
    for at in range(60, 600, 60):
        assert rig.t(at, temperature=85.0) == []  # one report, and no freezer-warm count
    assert cs(rig.t(600, temperature=-20)) == [(RANGE, "cleared")]
    assert of(rig.log, WARM) == []


def test_the_other_metrics_of_an_impossible_reading_are_still_judged():
    rig = Rig("freezer", {"duration_s": 60})
    out = rig.t(0, temperature=-10, humidity=150) + rig.t(60, temperature=-10, humidity=150)
    assert cs(out) == [(RANGE, "active"), (WARM, "active")]
    assert rig.t(120, temperature=-10) == []  # humidity not reported: still suspect
    assert cs(rig.t(180, temperature=-10, humidity=80)) == [(RANGE, "cleared")]


def test_every_valid_range_bound_is_inclusive():
    rig = Rig("elevator")
    rig.t(0, speed_mps=0, position_m=-5, door_open=0, in_door_zone=1, passenger=0)
    rig.t(1, speed_mps=20, position_m=1000, door_open=1, in_door_zone=1, passenger=1)
    assert of(rig.log, RANGE) == []
    assert cs(rig.t(2, speed_mps=-0.1), RANGE) == [(RANGE, "active")]


def test_metrics_outside_the_profile_are_ignored():
    rig = Rig("boiler")
    assert rig.t(0, pressure_mpa=1.0, colour=99999.0) == []


# --- order, duplicates, unknowns -----------------------------------------------------------------


def test_late_and_repeated_readings_are_ignored():
    rig = Rig("freezer")
    for at, temp in ((0, -10), (900, -10), (900, -30), (180, -30), (960, -10)):
        rig.t(at, temperature=temp)
    assert cs(rig.log, WARM) == [(WARM, "active")]
    assert rig.engine.stats.late == 1 and rig.engine.stats.duplicates == 1


def test_out_of_order_readings_do_not_end_an_excursion():
    rig = Rig("freezer", {"duration_s": 120})
    rig.t(0, temperature=-10)
    rig.t(60, temperature=-10)
    rig.t(30, temperature=-25)  # older than the newest: says nothing about now
    rig.t(120, temperature=-10)
    assert cs(rig.log) == [(WARM, "active")] and rig.log[0].window_start == ms(0)


def test_a_late_event_is_ignored():
    rig = Rig("freezer", {"heartbeat_s": 3600})
    rig.ev(100, "door_open")
    rig.ev(50, "door_closed")  # older than the opening
    assert cs(rig.tick(700)) == [("COLD_CHAIN_DOOR_LEFT_OPEN", "active")]


def test_an_event_at_the_same_time_as_a_reading_counts():
    rig = Rig("freezer", {"heartbeat_s": 3600})
    rig.t(0, temperature=-20)
    rig.ev(0, "door_open")
    assert cs(rig.tick(600)) == [("COLD_CHAIN_DOOR_LEFT_OPEN", "active")]


def test_unknown_profiles_get_nothing_at_all():
    rig = Rig("toaster")
    rig.t(0, temperature=500)
    rig.status(1, online=False)
    rig.tick(100_000)
    assert rig.log == [] and len(rig.engine) == 0
    assert rig.engine.stats.unknown_profile == 2


def test_unknown_events_are_counted():
    rig = Rig("boiler")
    assert rig.ev(0, "explosion") == []
    assert rig.engine.stats.unknown_events == 1


def test_a_device_without_a_registry_entry_is_judged_on_the_defaults():
    engine = RuleEngine(BOOK)
    out = []
    for i in range(16):
        out += engine.feed(
            Telemetry("e", "x", "s", "freezer", T0 + i * 60_000, {"temperature": -10}, T0 + i * 60_000)
        )
    assert cs(out) == [(WARM, "active")]


def test_new_ratings_apply_to_the_episode_under_way():
    rig = Rig("freezer", {"max_temp_c": -18})
    rig.t(0, temperature=-10)
    rig.device = Device("d1", "ent", "site", "freezer", {"max_temp_c": -5})  # re-rated by an operator
    assert rig.t(60, temperature=-10) == []  # -10 is fine for it now: the pending episode ends
    rig.t(120, temperature=-4)
    rig.t(1020, temperature=-4)
    assert cs(rig.log, WARM) == [(WARM, "active")] and of(rig.log, WARM)[0].window_start == ms(120)


def test_a_device_moved_to_another_profile_starts_afresh():
    rig = Rig("freezer")
    rig.t(0, temperature=-10)
    rig.device = Device("d1", "ent", "site", "chiller", {})
    d = rig.device
    # Ingest stamps the registered profile on each message.
    rig.engine.feed(Telemetry("ent", "d1", "site", "chiller", ms(60), {"temperature": 4.0}, ms(60)), d)
    state = rig.engine.device("d1")
    assert state is not None and state.profile == "chiller" and state.values == {"temperature": 4.0}


# --- determinism ------------------------------------------------------------------------------------


def _random_fleet(seed: int) -> list[tuple[str, str, float, dict[str, float] | str]]:
    rng = random.Random(seed)
    devices = [
        ("f", "freezer"),
        ("c", "chiller"),
        ("e", "elevator"),
        ("g", "gas_detector"),
        ("p", "pressure_vessel"),
    ]
    out = []
    at = 0.0
    for _ in range(3000):
        at += rng.choice((1, 5, 20, 60, 400))
        dev, profile = rng.choice(devices)
        if profile == "freezer":
            out.append((dev, profile, at, {"temperature": rng.choice((-25, -18.2, -17.9, -10, 70))}))
        elif profile == "chiller":
            out.append(
                (
                    dev,
                    profile,
                    at,
                    "door_open" if rng.random() < 0.3 else {"temperature": rng.uniform(-2, 10)},
                )
            )
        elif profile == "elevator":
            out.append((dev, profile, at, "door_reopen" if rng.random() < 0.4 else {
                "speed_mps": rng.choice((0.0, 0.0, 1.0, 2.5)), "position_m": 10.0,
                "door_open": float(rng.random() < 0.5), "in_door_zone": float(rng.random() < 0.5),
                "passenger": float(rng.random() < 0.5),
            }))  # fmt: skip
        elif profile == "gas_detector":
            out.append((dev, profile, at, {"gas_lel_pct": rng.choice((0.0, 5.0, 15.0, 25.0))}))
        else:
            out.append(
                (dev, profile, at, "safety_valve_lift" if rng.random() < 0.2 else {"pressure_mpa": 1.0})
            )
    return out


def _run(stream: list, tick_every: int, seed: int) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    engine = RuleEngine(BOOK)
    rigs: dict[str, Rig] = {}
    for n, (dev, profile, at, what) in enumerate(stream):
        rig = rigs.setdefault(dev, Rig(profile, device=dev, engine=engine))
        if isinstance(what, str):
            rig.ev(at, what)
        else:
            rig.t(at, **what)
        if tick_every and n % tick_every == 0:
            # Ticks at odd moments, but never ahead of what has been fed: the service ticks a
            # partition at its watermark, or at the wall clock once it has read everything.
            rig.tick(at - rng.choice((0, 0.5, 3, 30)))
    for rig in rigs.values():
        rig.tick(stream[-1][2] + 100_000)
    return sorted((v.violation_id, v.state, v.detected_at) for rig in rigs.values() for v in rig.log)


def test_the_same_messages_give_the_same_violations_whatever_the_ticks():
    stream = _random_fleet(1)
    never, often, sometimes = _run(stream, 0, 1), _run(stream, 1, 2), _run(stream, 7, 3)
    assert never == often == sometimes
    assert len(never) > 100
    assert {v[1] for v in never} == {"active", "cleared"}


def test_violation_ids_follow_the_documented_formula():
    rig = Rig("boiler")
    rig.series("pressure_mpa", [(s, 2.0) for s in range(11)])
    [v] = rig.log
    assert v.violation_id == violation_id("device", "d1", "BOILER_OVER_PRESSURE", ms(0))
