"""The committed early-warning model (`models/early-warning.onnx` and its manifest and card) on
freshly simulated devices, with seeds the training never used.

Only onnxruntime and numpy here: scikit-learn and skl2onnx are the `train` extra, absent in CI."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import onnx

from detectors.early_warning import CODE, FEATURES, EarlyWarning, default_manifest, load_manifest
from models.early_warning import train
from models.early_warning.episodes import Episode
from models.early_warning.evaluate import FALSE_WARNING_BUDGET
from models.early_warning.simulation import HORIZON_MIN, messages
from simulators.devices import Fault
from vigil.events import DeviceEvent, Telemetry, Violation

MODELS = Path(train.__file__).resolve().parents[1]  # the training command's default --out


def feed(ew: EarlyWarning, ep: Episode) -> tuple[list[Violation], list[Telemetry]]:
    """Every message of the episode through `warnings`, as the detector would call it."""
    out: list[Violation] = []
    readings: list[Telemetry] = []
    device = ep.device
    for msg in messages(ep):
        out += ew.warnings(msg, device)
        if isinstance(msg, Telemetry):
            readings.append(msg)
    return out, readings


def test_the_onnx_file_matches_its_manifest(ew: EarlyWarning) -> None:
    m = load_manifest()
    assert m.path == default_manifest().resolve() and m.file == MODELS / "early-warning.onnx"
    graph = onnx.load(str(m.file)).graph
    [inp] = graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == m.input == "features"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(dims) == 2 and not dims[0].HasField("dim_value") and dims[1].dim_value == len(FEATURES)
    assert m.output in {o.name for o in graph.output}
    raw = tomllib.loads((MODELS / "early-warning.toml").read_text(encoding="utf-8"))
    assert raw["input_shape"] == ["N", len(FEATURES)] and raw["features"] == list(FEATURES)
    assert raw["profiles"] == ["freezer", "chiller", "boiler", "pressure_vessel"]
    assert raw["horizon_min"] == HORIZON_MIN and raw["code"] == CODE
    assert 0 < m.policy.clear_below <= m.policy.threshold < 1
    # The operating point meets the false-warning budget on the held-out days it was measured on.
    assert raw["evaluation"]["false_warnings_per_device_day"] <= FALSE_WARNING_BUDGET
    # A probability per row, in [0, 1], for a batch of any size.
    p = ew.predict(np.zeros((5, len(FEATURES)), dtype=np.float32))
    assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))


def test_the_model_card_records_the_operating_point_and_the_figures() -> None:
    card = (MODELS / "early-warning.md").read_text(encoding="utf-8")
    raw = tomllib.loads((MODELS / "early-warning.toml").read_text(encoding="utf-8"))
    assert "simulated only" in card.lower()
    assert f"**threshold {raw['threshold']:g}**" in card
    assert f"**{raw['confirm_min']} consecutive score" in card
    assert "python -m models.early_warning.train" in card
    assert f"median {raw['evaluation']['lead_median_min']:.0f}" in card
    for name in FEATURES:
        assert f"`{name}`" in card


def _first_beyond(readings: list[Telemetry], metric: str, limit: float, above: bool = True) -> int:
    return next(r.ts for r in readings if (r.metrics[metric] > limit if above else r.metrics[metric] < limit))


def test_a_held_out_freezer_drift_is_warned_before_the_limit(ew: EarlyWarning) -> None:
    ep = Episode(
        "held-out/freezer/compressor", "freezer", "compressor_failure", "held-out-1", start_hour=9.0,
        hours=5.0, options={"setpoint_c": -22.0, "door_openings_per_hour": 2.0},
        faults=(Fault("compressor_failure", 2 * 3600.0, 5 * 3600.0),),
    )  # fmt: skip
    ew.forget()
    out, readings = feed(ew, ep)
    raised = [v for v in out if v.state == "active"]
    crossed = _first_beyond(readings, "temperature", -18.0)
    assert len(raised) == 1, out
    onset = ep.fault_start_ms
    assert onset is not None and onset <= raised[0].detected_at < crossed
    assert raised[0].evidence["forecast_rule"] == "COLD_CHAIN_FREEZER_WARM"


def test_a_held_out_pressure_creep_is_warned_before_the_limit(ew: EarlyWarning) -> None:
    ep = Episode(
        "held-out/vessel/creep", "pressure_vessel", "pressure_creep", "held-out-2", start_hour=14.0,
        hours=3.0, attributes={"rated_pressure_mpa": 1.6},
        faults=(Fault("pressure_creep", 3600.0, 2 * 3600.0, {"rate_mpa_per_min": 0.03}),),
    )  # fmt: skip
    ew.forget()
    out, readings = feed(ew, ep)
    raised = [v for v in out if v.state == "active"]
    crossed = _first_beyond(readings, "pressure_mpa", 1.6)
    assert len(raised) == 1 and raised[0].detected_at < crossed, out


def test_a_held_out_normal_freezer_day_with_door_openings_raises_nothing(ew: EarlyWarning) -> None:
    ep = Episode(
        "held-out/freezer/normal", "freezer", "normal", "held-out-3", start_hour=0.0, hours=24.0,
        options={"setpoint_c": -22.0, "door_openings_per_hour": 4.0, "defrosts_per_day": 4},
    )  # fmt: skip
    ew.forget()
    doors = sum(1 for m in messages(ep) if isinstance(m, DeviceEvent) and m.event == "door_open")
    out, readings = feed(ew, ep)
    assert doors > 30 and len(readings) == 24 * 60
    assert out == []
