"""ONNX export (skl2onnx) and the manifest the runtime reads (`detectors.early_warning.load_manifest`).

The same seed gives the same bytes: the opset imports are written in a fixed order, and the
manifest is plain text in a fixed layout.
"""

from __future__ import annotations

from typing import Any, Final

from detectors.early_warning import CHANNELS, CODE, FEATURES, MIN_POINTS, WINDOW_MIN, Policy
from detectors.early_warning.channels import PROFILES
from models.early_warning.evaluate import Figures
from models.early_warning.simulation import HORIZON_MIN

NAME: Final = "early-warning"
OPSET: Final = 17
ML_OPSET: Final = 3
IR_VERSION: Final = 8  # loadable by every onnxruntime Vigil supports


def export(model: Any, seed: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        name=NAME,
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    onx.ir_version = IR_VERSION
    # The name the committed model was produced under, kept so that the same seed still gives the
    # same bytes as the committed `early-warning.onnx`.
    onx.producer_name = "vigil.models.early_warning"
    onx.producer_version = "1"
    onx.doc_string = (
        f"Vigil early warning: P(the limit rule fires within {HORIZON_MIN} min) per device metric "
        f"window. Trained on simulated devices only (seed {seed})."
    )
    del onx.metadata_props[:]
    entry = onx.metadata_props.add()
    entry.key, entry.value = "features", ",".join(FEATURES)
    return canonical(onx)


def canonical(onx: Any) -> bytes:
    """The model's bytes with its opset imports in a fixed order: skl2onnx lists them in set order,
    which changes with Python's hash seed from one run to the next."""
    imports = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in imports:
        onx.opset_import.add(domain=domain, version=version)
    return bytes(onx.SerializeToString())


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def manifest_text(policy: Policy, test: Figures, defaults: Figures, seed: int, counts: dict[str, Any]) -> str:
    lines = [
        "# The early-warning model (see early-warning.md), written by",
        "# `python -m models.early_warning.train`. detectors/early_warning/ reads it and refuses a",
        "# model whose features or channels differ from its own.",
        f"name = {_toml(NAME)}",
        f'file = "{NAME}.onnx"',
        'type = "tabular"',
        'data = "simulated only"',
        f"seed = {seed}",
        'input = "features"',
        f'input_shape = ["N", {len(FEATURES)}]  # float32 rows, one per watched metric of a device',
        'output = "probabilities"  # (N, 2): column 1 is P(the rule fires within horizon_min)',
        "output_column = 1",
        f"horizon_min = {HORIZON_MIN}",
        f"window_min = {WINDOW_MIN}",
        f"min_points = {MIN_POINTS}",
        f"threshold = {_toml(policy.threshold)}  # a device's risk (its highest row) at or above ...",
        f"confirm_min = {policy.confirm_min}  # ... for this many consecutive scores (minutes): warning",
        f"clear_below = {_toml(policy.clear_below)}  # cleared once under this for clear_after_min scores",
        f"clear_after_min = {policy.clear_after_min}",
        f"cooldown_min = {policy.cooldown_min}  # no new warning within this long of a clear",
        f'code = "{CODE}"',
        f"profiles = {_toml(list(PROFILES))}",
        "features = [",
        *(f'    "{name}",' for name in FEATURES),
        "]",
        "",
        "[evaluation]  # held-out simulated test episodes (never seen in training or validation)",
        f"faults = {test.faults}",
        f"warned_before_rule = {test.warned_before}",
        f"warned_before_rule_share = {_toml(test.warned_share)}",
        f"lead_median_min = {_toml(test.lead(50))}",
        f"lead_p10_min = {_toml(test.lead(10))}",
        f"normal_device_days = {_toml(test.normal_days)}",
        f"normal_false_warnings = {test.normal_warnings}",
        f"false_warnings_per_device_day = {_toml(test.false_rate)}",
        f"defaults_device_days = {_toml(defaults.normal_days)}  # normal days at default settings",
        f"defaults_false_warnings = {defaults.normal_warnings}",
        f"episodes = {counts['episodes']}",
        f"train_rows = {counts['train_rows']}",
        f"train_positive_rows = {counts['train_positive']}",
    ]
    for c in CHANNELS:
        lines += [
            "",
            "[[channels]]",
            f"name = {_toml(c.name)}",
            f"profile = {_toml(c.profile)}",
            f"metric = {_toml(c.metric)}",
            f"rule = {_toml(c.rule)}",
            f'limit = "attr:{c.limit_attr}[{c.limit_default:g}]"',
            f"direction = {_toml(c.direction)}",
            f"scale = {_toml(float(c.scale))}{'  # times the limit' if c.relative else ''}",
        ]
    return "\n".join(lines) + "\n"
