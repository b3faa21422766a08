"""A stub early-warning model whose risk is a plain function of the margin, its manifest, and the
devices and times the tests drive it with: warnings, ids, confirmation, clearing and cooldown can
then be driven exactly. The trained model itself is tested in tests/models/early_warning/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detectors.early_warning import CHANNELS, FEATURES, WINDOW_MIN
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
