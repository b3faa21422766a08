"""The simulated devices: they publish exactly what docs/devices.md names, within its valid ranges,
stay inside every alarm limit on a normal day, are reproducible, and each fault does what it says."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from simulators.devices import EVENTS, METRICS, MODELS, Clock, Fault, Message, make_device
from simulators.devices.base import Param, check_params
from simulators.devices.boiler import saturation_c
from simulators.devices.contract import HEARTBEAT_S

DOCS = Path(__file__).parents[2] / "docs" / "devices.md"
MONDAY_9AM = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
MIDNIGHT = Clock(datetime(2026, 1, 5, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
DAY = 86_400.0


def run(
    profile: str,
    seconds: float,
    *,
    faults: tuple[Fault, ...] = (),
    seed: int | str = 1,
    clock: Clock = MONDAY_9AM,
    **kwargs: Any,
) -> list[Message]:
    device = make_device(profile, f"{profile[:8]}-1", seed=seed, faults=faults, clock=clock, **kwargs)
    out: list[Message] = []
    t = 0.0
    while t <= seconds:
        out += device.step(t)
        t += device.interval
    return out


def series(messages: list[Message], metric: str) -> list[tuple[float, float]]:
    return [(m.t_s, m.body["metrics"][metric]) for m in messages if m.kind == "telemetry"]


def events(messages: list[Message], name: str | None = None) -> list[Message]:
    return [m for m in messages if m.kind == "event" and (name is None or m.body["event"] == name)]


def longest_run(points: list[tuple[float, float]], pred: Callable[[float], bool]) -> float:
    """Longest stretch, in seconds, over which consecutive readings all satisfy `pred`."""
    best, start = 0.0, None
    for t, v in points:
        if pred(v):
            start = t if start is None else start
            best = max(best, t - start)
        else:
            start = None
    return best


# -- the contract --------------------------------------------------------------------------------


def _documented() -> tuple[dict[str, dict[str, tuple[float, float]]], dict[str, set[str]]]:
    """Metric tables and event names per profile, read back from docs/devices.md."""
    metrics: dict[str, dict[str, tuple[float, float]]] = {}
    events_: dict[str, set[str]] = {}
    profiles: list[str] = []
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].split("(")[0]
            profiles = [p.strip() for p in heading.split(",") if p.strip() in MODELS]
            for p in profiles:
                metrics.setdefault(p, {})
                events_.setdefault(p, set())
        elif row := re.match(r"\| `(\w+)` \|[^|]*\| (−?[\d.]+) … (−?[\d.]+) \|", line):
            lo, hi = (float(x.replace("−", "-")) for x in row.group(2, 3))
            for p in profiles:
                metrics[p][row[1]] = (lo, hi)
        elif line.startswith(("Event: ", "Events: ")):
            names = set(re.findall(r"`(\w+)`", line.split(" with ")[0].split(" (")[0]))
            for p in profiles:
                events_[p] |= names
    return metrics, events_


def test_the_contract_module_matches_docs_devices_md() -> None:
    metrics, events_ = _documented()
    assert set(metrics) == set(MODELS) == set(METRICS)
    assert metrics == METRICS
    assert events_ == {p: set(e) for p, e in EVENTS.items()}


@pytest.mark.parametrize("profile", sorted(MODELS))
def test_a_normal_day_publishes_only_contract_names_within_valid_ranges(profile: str) -> None:
    messages = run(profile, DAY, clock=MIDNIGHT)
    telemetry = [m for m in messages if m.kind == "telemetry"]
    assert messages[0] == Message(0.0, "status", {"online": True})  # what a device says on connecting
    if METRICS[profile]:
        assert telemetry
    for m in telemetry:
        assert set(m.body["metrics"]) == set(METRICS[profile]), m
        for name, value in m.body["metrics"].items():
            lo, hi = METRICS[profile][name]
            assert isinstance(value, float) and lo <= value <= hi, (name, value)
    assert {e.body["event"] for e in events(messages)} <= EVENTS[profile]
    times = [m.t_s for m in messages]
    assert times == sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < HEARTBEAT_S, "a working device is never silent long enough to look offline"


@pytest.mark.parametrize("profile", sorted(MODELS))
def test_devices_are_reproducible_from_their_seed(profile: str) -> None:
    a, b = run(profile, 3600, seed=5), run(profile, 3600, seed=5)
    assert a == b
    assert a != run(profile, 3600, seed=6)


def test_a_fault_changes_nothing_before_it_starts() -> None:
    for profile, fault in [
        ("freezer", Fault("door_left_open", 1800, 2400)),
        ("elevator", Fault("stuck_between_floors", 1800, 1900, {"passenger": True})),
        ("boiler", Fault("sensor_gone_mad", 1800, 2000)),
    ]:
        plain, faulty = run(profile, 3600), run(profile, 3600, faults=(fault,))
        assert [m for m in plain if m.t_s < 1800] == [m for m in faulty if m.t_s < 1800]
        assert plain != faulty


# -- a normal day stays inside every alarm limit of docs/devices.md --------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_normal_day_stays_inside_every_alarm_limit(seed: int) -> None:
    freezer = run("freezer", DAY, seed=seed, clock=MIDNIGHT)
    assert longest_run(series(freezer, "temperature"), lambda v: v > -18) < 300
    chiller = run("chiller", DAY, seed=seed, clock=MIDNIGHT)
    assert all(0 < v < 8 for _, v in series(chiller, "temperature"))
    for room in (freezer, chiller):
        assert all(60 < v < 95 for _, v in series(room, "humidity"))
        opened = [m.t_s for m in events(room)]
        assert all(b - a < 120 for a, b in zip(opened[::2], opened[1::2], strict=False))  # short visits
    boiler = run("boiler", DAY, seed=seed, clock=MIDNIGHT)
    assert max(v for _, v in series(boiler, "pressure_mpa")) < 1.25 * 0.95
    assert min(v for _, v in series(boiler, "water_level_mm")) > 50 + 20
    assert max(v for _, v in series(boiler, "temperature_c")) < 194 - 5
    vessel = run("pressure_vessel", DAY, seed=seed, clock=MIDNIGHT)
    assert max(v for _, v in series(vessel, "pressure_mpa")) < 1.6 * 0.95 and not events(vessel)
    gas = run("gas_detector", DAY, seed=seed, clock=MIDNIGHT)
    assert max(v for _, v in series(gas, "gas_lel_pct")) < 10
    station = run("gas_filling", DAY, seed=seed, clock=MIDNIGHT)
    fills = events(station, "filling_started")
    assert len(fills) > 20
    for fill in fills:
        assert date.fromisoformat(fill.body["data"]["inspection_due"]) > MIDNIGHT.at(fill.t_s).date()


def test_a_normal_elevator_day_has_no_unsafe_moment() -> None:
    elevator = run("elevator", DAY, clock=MIDNIGHT, attributes={"top_m": 57})
    rows = [m.body["metrics"] for m in elevator if m.kind == "telemetry"]
    assert len(rows) > 5000  # once a second while busy: it carried people all day
    for r in rows:
        assert not (r["speed_mps"] > 0.1 and r["door_open"])
        assert -0.3 <= r["position_m"] <= 57.3 and r["speed_mps"] <= 1.75
        assert not (r["speed_mps"] < 0.05 and not r["in_door_zone"])
    reopens = [m.t_s for m in events(elevator, "door_reopen")]
    assert reopens and all(sum(1 for u in reopens if t <= u <= t + 120) < 5 for t in reopens)
    # Busier by day than at night.
    by_hour = [
        sum(1 for m in elevator if m.kind == "telemetry" and h * 3600 <= m.t_s < (h + 1) * 3600)
        for h in (3, 9)
    ]
    assert by_hour[1] > 2 * by_hour[0]


# -- faults ------------------------------------------------------------------------------------


def test_door_left_open_opens_warms_and_closes() -> None:
    messages = run("freezer", 3 * 3600, faults=(Fault("door_left_open", 720, 1920),))
    door = [(m.t_s, m.body["event"]) for m in events(messages) if 720 <= m.t_s <= 1920]
    assert door == [(720, "door_open"), (1920, "door_closed")]
    temps = series(messages, "temperature")
    assert longest_run(temps, lambda v: v > -18) >= 1800  # the room stays warm well after closing
    assert max(v for _, v in temps) < 0 and temps[-1][1] < -20  # and recovers


def test_compressor_failure_warms_a_chiller_past_8_degrees() -> None:
    temps = series(
        run("chiller", 3 * 3600, faults=(Fault("compressor_failure", 600, 3 * 3600),)), "temperature"
    )
    assert longest_run(temps, lambda v: v > 8) > 3600
    assert max(v for _, v in temps) < 25  # never warmer than the kitchen


def test_hover_swings_around_the_value_without_a_long_excursion() -> None:
    fault = Fault("hover", 600, 4 * 3600, {"around_c": -18.0, "swing_c": 1.0, "period_min": 12.0})
    temps = [(t, v) for t, v in series(run("freezer", 4 * 3600, faults=(fault,)), "temperature") if t > 900]
    assert min(v for _, v in temps) < -18.5 < -17.5 < max(v for _, v in temps)
    assert longest_run(temps, lambda v: v > -18) <= 6 * 60


def test_stuck_between_floors_with_and_without_a_passenger() -> None:
    for passenger in (True, False):
        fault = Fault("stuck_between_floors", 300, 480, {"passenger": passenger})
        rows = [
            (m.t_s, m.body["metrics"]) for m in run("elevator", 700, faults=(fault,)) if m.kind == "telemetry"
        ]
        stuck = [t for t, r in rows if r["speed_mps"] == 0 and not r["in_door_zone"]]
        assert stuck and stuck[0] < 320 and stuck[-1] >= 479
        assert all(r["passenger"] == passenger for t, r in rows if t in stuck)
        after = [r for t, r in rows if t > stuck[-1]]
        assert any(r["in_door_zone"] and r["door_open"] for r in after)  # rescued: level, door open


def test_elevator_incidents() -> None:
    top = {"top_m": 57.0, "rated_speed_mps": 1.75}

    def rows(fault: Fault) -> list[dict[str, float]]:
        messages = run("elevator", 500, faults=(fault,), attributes=top)
        return [m.body["metrics"] for m in messages if m.kind == "telemetry"]

    moving_open = [
        r for r in rows(Fault("door_open_while_moving", 300, 300)) if r["speed_mps"] > 0.1 and r["door_open"]
    ]
    assert len(moving_open) >= 3
    fast = [r for r in rows(Fault("overspeed", 300, 300, {"factor": 1.3})) if r["speed_mps"] > 1.75 * 1.15]
    assert len(fast) >= 3
    for direction, past in (("top", 57.3), ("bottom", -0.3)):
        travel = rows(Fault("over_travel", 300, 300, {"direction": direction}))
        overshoot = [r for r in travel if (r["position_m"] - past) * (1 if direction == "top" else -1) > 0]
        assert 0 < len(overshoot) < 10  # a short stop past the landing, then it relevels


def test_door_obstructed_reopens_again_and_again() -> None:
    messages = run("elevator", 600, faults=(Fault("door_obstructed", 300, 420),))
    during = [m.t_s for m in events(messages, "door_reopen") if 300 <= m.t_s < 420]
    assert len(during) >= 10
    assert len([m for m in events(messages, "door_reopen") if m.t_s >= 430]) <= 1  # it closes once cleared


def test_boiler_faults() -> None:
    level = series(
        run("boiler", 3600, faults=(Fault("low_water", 600, 2100, {"rate_mm_per_min": 6.0}),)),
        "water_level_mm",
    )
    assert longest_run(level, lambda v: v < 50) > 180
    creep = run("boiler", 3600, faults=(Fault("pressure_creep", 600, 2100, {"to_mpa": 1.4}),))
    assert longest_run(series(creep, "pressure_mpa"), lambda v: v > 1.25) > 600
    # Saturated water at 1.4 MPa (gauge) is about 198 °C, over the 194 °C limit.
    assert longest_run(series(creep, "temperature_c"), lambda v: v > 194) > 600
    assert saturation_c(1.25) == pytest.approx(194, abs=1)
    hot = run("boiler", 3600, faults=(Fault("over_temperature", 600, 1500),))
    assert longest_run(series(hot, "temperature_c"), lambda v: v > 194) > 300
    assert max(v for _, v in series(hot, "pressure_mpa")) < 1.25


def test_pressure_vessel_creeps_until_the_valve_lifts() -> None:
    messages = run(
        "pressure_vessel", 3600, faults=(Fault("pressure_creep", 600, 2400, {"rate_mpa_per_min": 0.05}),)
    )
    assert longest_run(series(messages, "pressure_mpa"), lambda v: v > 1.6) > 600
    lifts = events(messages, "safety_valve_lift")
    assert len(lifts) >= 3 and all(
        lift.body["data"]["set_pressure_mpa"] == pytest.approx(1.76) for lift in lifts
    )
    assert all(lift.body["data"]["pressure_mpa"] >= 1.76 for lift in lifts)
    spurious = events(run("pressure_vessel", 1200, faults=(Fault("safety_valve_lift", 600, 600),)))
    assert [m.t_s for m in spurious] == [600] and spurious[0].body["data"]["pressure_mpa"] < 1.6


def test_overdue_cylinder_is_filled_at_its_time() -> None:
    fault = Fault("overdue_cylinder", 5400, 5400, {"cylinder_id": "OLD-1", "overdue_days": 45})
    fills = events(run("gas_filling", 3 * 3600, faults=(fault,)), "filling_started")
    [overdue] = [m for m in fills if m.body["data"]["cylinder_id"] == "OLD-1"]
    assert overdue.t_s == 5400
    day = MONDAY_9AM.at(5400).date()
    assert date.fromisoformat(overdue.body["data"]["inspection_due"]) == day - timedelta(days=45)


def test_gas_leak_climbs_past_the_alarm_and_airs_out() -> None:
    gas = series(
        run("gas_detector", 3600, faults=(Fault("gas_leak", 600, 1800, {"peak_lel_pct": 45.0}),)),
        "gas_lel_pct",
    )
    assert longest_run(gas, lambda v: v > 20) > 1000
    assert all(v < 10 for t, v in gas if t > 2400)


def test_offline_sends_the_last_will_then_silence_then_online() -> None:
    messages = run("boiler", 1800, faults=(Fault("offline", 600, 1200),))
    statuses = [m for m in messages if m.kind == "status"]
    assert [(m.t_s, m.raw) for m in statuses[1:]] == [(600, b"offline"), (1200, None)]
    assert statuses[2].body == {"online": True}
    assert not [m for m in messages if 600 <= m.t_s < 1200 and m.kind != "status"]
    assert [m for m in messages if m.t_s > 1200 and m.kind == "telemetry"]
    silent = run("boiler", 1800, faults=(Fault("offline", 600, 1200, {"last_will": False}),))
    assert [m.t_s for m in silent if m.kind == "status"] == [0.0, 1200]


def test_sensor_gone_mad_reads_impossible_values_only_while_it_lasts() -> None:
    messages = run("chiller", 3600, faults=(Fault("sensor_gone_mad", 600, 1200),))
    for t, v in series(messages, "temperature"):
        assert (not -60 <= v <= 60) == (600 <= t < 1200), (t, v)
    stuck = run("pressure_vessel", 1200, faults=(Fault("sensor_gone_mad", 600, 900, {"value": -1}),))
    assert {v for t, v in series(stuck, "pressure_mpa") if 600 <= t < 900} == {-1.0}


# -- checks and the clock ------------------------------------------------------------------------


def test_faults_and_options_are_checked() -> None:
    with pytest.raises(ValueError, match="'sprinkler' is not a fault of a freezer; expected one of"):
        make_device("freezer", "f", faults=[Fault("sprinkler", 0, 10)])
    with pytest.raises(ValueError, match="unknown 'peak'; allowed"):
        make_device("elevator", "e", faults=[Fault("stuck_between_floors", 0, 10, {"peak": 1})])
    with pytest.raises(ValueError, match="passenger must be true or false"):
        make_device("elevator", "e", faults=[Fault("stuck_between_floors", 0, 10, {"passenger": "yes"})])
    with pytest.raises(ValueError, match="around_c is required"):
        make_device("freezer", "f", faults=[Fault("hover", 0, 10)])
    with pytest.raises(ValueError, match=r"interval_s must be at least 0\.1"):
        make_device("boiler", "b", options={"interval_s": 0})
    with pytest.raises(ValueError, match="unknown device type 'toaster'"):
        make_device("toaster", "t")
    assert "sensor_gone_mad" not in MODELS["gas_filling"].fault_specs()  # it has no sensors
    with pytest.raises(ValueError, match="must be one of top, bottom"):
        check_params("x", {"direction": Param("string", choices=("top", "bottom"))}, {"direction": "up"})


def test_steps_move_forward() -> None:
    device = make_device("boiler", "b")
    device.step(10)
    with pytest.raises(ValueError, match="forward"):
        device.step(10)


def test_the_clock_is_local_and_exact_across_daylight_saving() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Clock(datetime(2026, 1, 1))
    berlin = Clock(datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("Europe/Berlin")))  # clocks go forward at 2:00
    assert berlin.at(3 * 3600).hour == 5 and berlin.hour(3600) == 3.0
    assert Clock(datetime(2026, 1, 1, tzinfo=UTC)).start_ms == 1_767_225_600_000
