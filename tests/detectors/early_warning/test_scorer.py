"""The early-warning scorer (`detectors.early_warning.scorer`) on the stub model: one drift one
warning, ids, confirmation, clearing and cooldown; one score a minute, bounded state, other
messages and devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.early_warning import CODE, MIN_POINTS, WINDOW_MIN, EarlyWarning
from tests.detectors.early_warning.support import BOILER, DEFAULTS, FREEZER, MIN, T0, write_manifest
from vigil.events import DeviceEvent, DeviceStatus, Telemetry, Violation, violation_id
from vigil.registry import Device


@pytest.fixture
def ew(tmp_path: Path) -> EarlyWarning:
    return EarlyWarning(write_manifest(tmp_path), defaults=DEFAULTS)


def reading(device: Device, minute: float, **metrics: float) -> Telemetry:
    ts = T0 + round(minute * MIN)
    return Telemetry(device.enterprise_id, device.device_id, device.site_id, device.profile, ts, metrics, ts)


def run(ew: EarlyWarning, temps: list[float], start: int = 0) -> list[Violation]:
    out: list[Violation] = []
    for i, t in enumerate(temps):
        out += ew.warnings(reading(FREEZER, start + i, temperature=t, humidity=75.0), FREEZER)
    return out


def test_one_drift_one_warning_with_a_deterministic_id_then_cleared(ew: EarlyWarning) -> None:
    assert run(ew, [-22.0] * 20) == []
    # Two consecutive high scores raise it (confirm_min 2); window_start is the first of them.
    warned = run(ew, [-19.0] * 8, start=20)
    assert [(v.code, v.state) for v in warned] == [(CODE, "active")]
    [v] = warned
    assert v.window_start == T0 + 20 * MIN and v.detected_at == T0 + 21 * MIN
    assert v.violation_id == violation_id("device", "fz-1", CODE, T0 + 20 * MIN)
    assert (v.severity, v.source_kind, v.source_id) == ("info", "device", "fz-1")
    assert v.evidence["channel"] == "freezer.temperature" and v.evidence["limit"] == -18.0
    assert v.evidence["risk"] >= 0.8 and "COLD_CHAIN_FREEZER_WARM" in v.summary
    # Back down: cleared after clear_after_min (3) low scores, with the raise's id.
    cleared = run(ew, [-22.0] * 5, start=28)
    assert [(c.state, c.violation_id, c.detected_at) for c in cleared] == [
        ("cleared", v.violation_id, T0 + 30 * MIN)
    ]


def test_a_flickering_risk_raises_once_and_a_short_dip_does_not_clear(ew: EarlyWarning) -> None:
    run(ew, [-22.0] * 20)
    temps = [-19.0, -22.0, -19.0, -19.0, -22.0, -22.0, -19.0, -22.0, -19.0]
    out = run(ew, temps, start=20)
    # The lone high score at 20 is not confirmed; 22-23 raise; dips of 1-2 scores never clear.
    assert [(v.state, v.window_start) for v in out] == [("active", T0 + 22 * MIN)]


def test_cooldown_after_a_clear(ew: EarlyWarning) -> None:
    run(ew, [-22.0] * 20)
    first = run(ew, [-19.0] * 3, start=20) + run(ew, [-22.0] * 3, start=23)
    assert [v.state for v in first] == ["active", "cleared"]  # cleared at minute 25
    assert run(ew, [-19.0] * 5 + [-22.0] * 40, start=26) == []  # within 60 min of the clear
    again = run(ew, [-19.0] * 3, start=86)  # 61 min after the clear
    assert [(v.state, v.window_start) for v in again] == [("active", T0 + 86 * MIN)]
    assert again[0].violation_id != first[0].violation_id


def test_scored_at_most_once_a_minute_and_only_with_history(ew: EarlyWarning) -> None:
    risks = []
    for i in range(6 * 30):  # a boiler every 10 s for 30 minutes
        m = reading(BOILER, i / 6, pressure_mpa=1.0, water_level_mm=120.0, temperature_c=184.0)
        risks.append(ew.score(BOILER, m.ts, m.metrics))
    scored = [i for i, r in enumerate(risks) if r is not None]
    # The first reading of each minute, from the MIN_POINTS-th minute on.
    assert scored == [6 * m for m in range(MIN_POINTS - 1, 30)]
    assert ew.scored == 30 - MIN_POINTS + 1


def test_buffers_stay_bounded_and_devices_are_capped(tmp_path: Path) -> None:
    ew = EarlyWarning(write_manifest(tmp_path), defaults=DEFAULTS, max_devices=5)
    for i in range(6 * 600):  # ten hours at 10 s
        ew.score(
            BOILER, T0 + i * 10_000, {"pressure_mpa": 1.0, "water_level_mm": 120.0, "temperature_c": 184}
        )
    for i in range(600):
        ew.event(FREEZER, T0 + i * 30_000, "door_open" if i % 2 == 0 else "door_closed")
    for track in (ew.track("bl-1"), ew.track("fz-1")):
        assert track is not None
        assert all(len(buf) <= WINDOW_MIN for buf in track.points.values())
        assert len(track._door_opens) <= WINDOW_MIN
    for n in range(20):
        ew.score(Device(f"d{n}", "e", "s", "chiller", {}), T0, {"temperature": 4.0})
    assert len(ew) == 5 and ew.track("d19") is not None and ew.track("bl-1") is None
    ew.forget()
    assert len(ew) == 0


def test_other_messages_and_devices(ew: EarlyWarning) -> None:
    ev = DeviceEvent("ent", "fz-1", "site", "freezer", T0, "door_open", {}, T0)
    assert ew.warnings(ev, FREEZER) == []
    track = ew.track("fz-1")
    assert track is not None and track._door_since == T0
    assert ew.warnings(DeviceStatus("ent", "fz-1", "site", "freezer", T0, False, T0), None) == []
    elevator = Device("el-1", "ent", "site", "elevator", {})
    assert ew.score(elevator, T0, {"speed_mps": 1.0}) is None and ew.track("el-1") is None
    # No registry entry: the message's profile and the profile file's default limits.
    out = []
    for i, t in enumerate([-22.0] * 20 + [-19.0] * 3):
        ts = T0 + i * MIN
        out += ew.warnings(Telemetry("ent", "fz-2", "site", "freezer", ts, {"temperature": t}, ts), None)
    assert [v.state for v in out] == ["active"]
