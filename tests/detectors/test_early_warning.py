"""The early-warning scorer (`detectors.early_warning`) on a stub model whose risk is a plain
function of the margin, so that warnings, ids, confirmation, clearing and cooldown can be driven
exactly; plus the feature window: one score a minute, bounded buffers, late and impossible readings.
The trained model itself is tested in tests/models/test_early_warning_model.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from detectors.early_warning import (
    CHANNELS,
    CODE,
    FEATURES,
    MIN_POINTS,
    WINDOW_MIN,
    DeviceTrack,
    EarlyWarning,
    Policy,
    WarnState,
    load_manifest,
    window_features,
)
from vigil.errors import ConfigurationError
from vigil.events import DeviceEvent, DeviceStatus, Telemetry, Violation, violation_id
from vigil.registry import Device

MIN = 60_000
T0 = (1_763_000_000_000 // MIN) * MIN  # a whole minute
FREEZER = Device("fz-1", "ent", "site", "freezer", {})
BOILER = Device("bl-1", "ent", "site", "boiler", {})
DEFAULTS = {"freezer": {"max_temp_c": -18.0, "duration_s": 900.0}}


def stub_model(path: Path) -> None:
    """P(fire) = sigmoid(5 - 10 × margin): 0.007 at margin 1 (a freezer at -22 °C), 0.5 at 0.5
    (-20 °C), 0.92 at 0.25 (-19 °C)."""
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "col"),
        numpy_helper.from_array(np.array(-10.0, dtype=np.float32), "k"),
        numpy_helper.from_array(np.array(5.0, dtype=np.float32), "b"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "col"], ["margin"], axis=1),
        helper.make_node("Mul", ["margin", "k"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "stub",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(FEATURES)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def write_manifest(directory: Path, **overrides: object) -> Path:
    stub_model(directory / "stub.onnx")
    values: dict[str, object] = {
        "name": "stub",
        "file": "stub.onnx",
        "input": "features",
        "input_shape": ["N", len(FEATURES)],
        "output": "probabilities",
        "output_column": 1,
        "horizon_min": 30,
        "window_min": WINDOW_MIN,
        "threshold": 0.8,
        "confirm_min": 2,
        "clear_below": 0.3,
        "clear_after_min": 3,
        "cooldown_min": 60,
        "profiles": ["freezer", "chiller", "boiler", "pressure_vessel"],
        "features": list(FEATURES),
        **overrides,
    }

    def toml(v: object) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return str(v)

    lines = [f"{k} = {toml(v)}" for k, v in values.items()]
    for c in CHANNELS:
        lines += ["", "[[channels]]", f'name = "{c.name}"']
    path = directory / "stub.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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


def test_late_and_impossible_readings_are_ignored() -> None:
    track = DeviceTrack("freezer")
    assert track.add(T0 + 5 * MIN, {"temperature": -22.0})
    assert not track.add(T0 + 4 * MIN, {"temperature": 30.0})  # late
    assert track.add(T0 + 6 * MIN, {"temperature": 999.0})  # new minute, impossible value
    assert list(track.points["temperature"]) == [(T0 // MIN + 5, -22.0)]


def test_own_limits_from_the_attributes_move_the_margin() -> None:
    track = DeviceTrack("freezer")
    for i in range(MIN_POINTS):
        track.add(T0 + i * MIN, {"temperature": -20.0})
    ts = T0 + (MIN_POINTS - 1) * MIN
    found = track.features(ts, {}, DEFAULTS)
    own = track.features(ts, {"max_temp_c": -15.0, "duration_s": 1800}, DEFAULTS)
    assert found is not None and own is not None
    margin, hold = FEATURES.index("margin"), FEATURES.index("hold_min")
    assert found[1][0, margin] == pytest.approx(0.5) and found[1][0, hold] == pytest.approx(15)
    assert own[1][0, margin] == pytest.approx(1.25) and own[1][0, hold] == pytest.approx(30)


def test_window_features_of_a_steady_approach() -> None:
    minutes = np.arange(-29, 1, dtype=np.float64)
    margins = 0.5 - 0.02 * minutes  # 1.08 half an hour ago, 0.5 now, losing 0.02 a minute
    row = window_features(
        minutes, margins, channel=0, hold_min=15, door_open_min=0, since_door_min=60, door_opens=0
    )
    f = dict(zip(FEATURES, row.tolist(), strict=True))
    assert f["margin"] == pytest.approx(0.5) and f["approach15"] == pytest.approx(0.02, rel=1e-4)
    assert f["eta15_min"] == pytest.approx(25, rel=1e-3) and f["rising_min"] == 29
    assert f["curvature30"] == pytest.approx(0, abs=1e-6) and f["resid30"] == pytest.approx(0, abs=1e-6)
    assert f["is_freezer_temperature"] == 1 and f["coverage"] == 1
    assert row.dtype == np.float32 and row.shape == (len(FEATURES),)


def test_warn_state_policy() -> None:
    policy = Policy(threshold=0.5, clear_below=0.2, confirm_min=1, clear_after_min=2, cooldown_min=10)
    st = WarnState()
    steps = [(0, 0.9), (1, 0.1), (2, 0.3), (3, 0.1), (4, 0.1), (5, 0.9), (16, 0.9)]
    got = [(m, st.step(T0 + m * MIN, r, policy)) for m, r in steps]
    assert got == [(0, "raise"), (1, None), (2, None), (3, None), (4, "clear"), (5, None), (16, "raise")]


def test_a_manifest_out_of_step_with_the_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="features differ"):
        load_manifest(write_manifest(tmp_path, features=list(FEATURES[:-1])))
    with pytest.raises(ConfigurationError, match="clear_below"):
        load_manifest(write_manifest(tmp_path, clear_below=0.9))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_manifest(tmp_path / "nope.toml")
