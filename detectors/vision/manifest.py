"""Model manifests: the TOML file that travels next to each ONNX detector.

The manifest says how to feed the model, how to read its output and what its classes mean for
supervision, so plugging in a new model is a file drop, not a code change:

```toml
name = "sim-markers"
file = "sim-markers.onnx"          # the ONNX file, relative to this manifest
type = "yolo"                      # the backend plugin (see detectors.vision.backends)
layout = "v8"                      # "v8" (also YOLOv11): (B, 4+nc, N), no objectness
                                   # "v5": (B, N, 5+nc) with objectness; "auto": told by shape
input_size = [320, 320]            # width, height of the letterboxed input
classes = ["without_mask", "cigarette", "rat"]
score_threshold = 0.35             # candidates below are dropped before NMS
iou_threshold = 0.45               # class-wise NMS overlap limit
max_detections = 100               # cap per image after NMS
description = "..."

[violations.without_mask]          # class name -> violation code and the score it needs
code = "KITCHEN_NO_MASK"
min_score = 0.5
```

Classes without a `[violations.*]` table are detected but raise nothing (a model may find
context objects, such as a person). Violation codes must exist in the catalogue: detectors never
invent codes. `load_manifest` also opens the ONNX graph (its structure only, no weights) and
checks that its input and output shapes agree with the manifest, so a mismatched model fails at
start-up with a message naming the file and field rather than with garbage boxes later.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

import onnx

from vigil.catalogue import catalogue
from vigil.errors import ConfigurationError

Layout = Literal["v8", "v5", "auto"]
LAYOUTS: tuple[Layout, ...] = get_args(Layout)

_REQUIRED = ("name", "file", "type", "input_size", "classes")
_KNOWN = frozenset(
    {
        *_REQUIRED,
        "layout",
        "score_threshold",
        "iou_threshold",
        "max_detections",
        "description",
        "violations",
    }
)
_VIOLATION_KEYS = frozenset({"code", "min_score"})
# Defaults follow the Ultralytics export conventions, so a manifest for a stock model stays short.
_DEFAULT_SCORE = 0.25
_DEFAULT_IOU = 0.45
_DEFAULT_MAX_DETECTIONS = 100
_DEFAULT_MIN_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class ClassViolation:
    """What one detected class means: the catalogue code, and the score a box needs to count."""

    code: str
    min_score: float


@dataclass(frozen=True, slots=True)
class ModelManifest:
    name: str
    path: Path  # the ONNX file, absolute
    manifest_path: Path  # the TOML file it was read from, absolute
    type: str
    layout: Layout
    input_size: tuple[int, int]  # width, height
    classes: tuple[str, ...]
    score_threshold: float
    iou_threshold: float
    max_detections: int
    description: str
    violations: Mapping[str, ClassViolation]  # read-only, class name -> rule


def default_models_dir() -> Path:
    """Where the bundled models live: the `models` package, wherever Vigil is installed."""
    try:
        return Path(str(resources.files("models")))
    except ModuleNotFoundError:
        # An editable install made before `models` became a package does not map it.
        raise ConfigurationError(
            "the `models` package is not importable: reinstall Vigil (pip install -e .)"
        ) from None


def find_manifest(name_or_path: str | Path) -> Path:
    """A manifest path from either a path to a .toml file or a bare model name such as
    "sim-markers", looked up in `default_models_dir()`."""
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"model manifest {path} does not exist")
        return path.resolve()
    models_dir = default_models_dir()
    path = models_dir / f"{text}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in models_dir.glob("*.toml"))
        raise ConfigurationError(
            f"no model named {text!r} in {models_dir}; known models: {', '.join(known) or 'none'}"
        )
    return path.resolve()


def load_manifest(path: str | Path) -> ModelManifest:
    """Read, validate and cross-check a manifest against its ONNX graph."""
    source = Path(path).expanduser().resolve()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"model manifest {source} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"model manifest {source}: cannot read it: {exc}") from None
    manifest = _parse(source, raw)
    _check_graph(manifest)
    return manifest


# --- parsing ---------------------------------------------------------------------------------------


def _error(source: Path, field: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"model manifest {source}: {field}: {message}")


def _string(source: Path, raw: Mapping[str, object], field: str) -> str:
    value = raw[field]
    if not isinstance(value, str) or not value.strip():
        raise _error(source, field, f"must be a non-empty string, got {value!r}")
    return value


def _fraction(source: Path, field: str, value: object) -> float:
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise _error(source, field, f"must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _parse(source: Path, raw: Mapping[str, object]) -> ModelManifest:
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise _error(
            source, ", ".join(unknown), f"unknown key(s); known keys are {', '.join(sorted(_KNOWN))}"
        )
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise _error(source, ", ".join(missing), "missing")

    name = _string(source, raw, "name")
    backend_type = _string(source, raw, "type")
    model_path = (source.parent / _string(source, raw, "file")).resolve()
    if not model_path.is_file():
        raise _error(source, "file", f"{model_path} does not exist")

    layout = raw.get("layout", "auto")
    if layout not in LAYOUTS:
        raise _error(source, "layout", f"must be one of {', '.join(LAYOUTS)}, got {layout!r}")

    size = raw["input_size"]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise _error(source, "input_size", f"must be [width, height], two positive integers, got {size!r}")

    classes = raw["classes"]
    if not isinstance(classes, list) or not classes:
        raise _error(source, "classes", "must be a non-empty list of class names")
    if not all(isinstance(c, str) and c.strip() for c in classes):
        raise _error(source, "classes", f"every class must be a non-empty string, got {classes!r}")
    duplicated = sorted({c for c in classes if classes.count(c) > 1})
    if duplicated:
        raise _error(source, "classes", f"duplicated: {', '.join(duplicated)}")

    score = _fraction(source, "score_threshold", raw.get("score_threshold", _DEFAULT_SCORE))
    iou = _fraction(source, "iou_threshold", raw.get("iou_threshold", _DEFAULT_IOU))
    max_detections = raw.get("max_detections", _DEFAULT_MAX_DETECTIONS)
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise _error(source, "max_detections", f"must be a positive integer, got {max_detections!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _error(source, "description", "must be a string")

    return ModelManifest(
        name=name,
        path=model_path,
        manifest_path=source,
        type=backend_type,
        layout=layout,
        input_size=(size[0], size[1]),
        classes=tuple(classes),
        score_threshold=score,
        iou_threshold=iou,
        max_detections=max_detections,
        description=description,
        violations=MappingProxyType(_violations(source, raw.get("violations", {}), classes, score)),
    )


def _violations(source: Path, raw: object, classes: list[str], score: float) -> dict[str, ClassViolation]:
    if not isinstance(raw, dict):
        raise _error(source, "violations", "must be a table of [violations.<class>] tables")
    known_codes = catalogue()
    rules: dict[str, ClassViolation] = {}
    for class_name, rule in raw.items():
        field = f"violations.{class_name}"
        if class_name not in classes:
            raise _error(source, field, f"class {class_name!r} is not in classes {classes}")
        if not isinstance(rule, dict):
            raise _error(source, field, "must be a table with code and min_score")
        unknown = sorted(set(rule) - _VIOLATION_KEYS)
        if unknown:
            raise _error(source, field, f"unknown key(s) {', '.join(unknown)}; known: code, min_score")
        code = rule.get("code")
        if not isinstance(code, str) or code not in known_codes:
            raise _error(source, f"{field}.code", f"{code!r} is not a code in the violation catalogue")
        min_score = _fraction(source, f"{field}.min_score", rule.get("min_score", _DEFAULT_MIN_SCORE))
        if min_score < score:
            # Candidates under score_threshold never reach the rule: a lower min_score would
            # silently mean score_threshold, which is not what its author wrote.
            raise _error(
                source,
                f"{field}.min_score",
                f"{min_score} is below score_threshold {score}, so it is unreachable",
            )
        rules[class_name] = ClassViolation(code=code, min_score=min_score)
    return rules


# --- the graph cross-check -------------------------------------------------------------------------


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    """Static sizes of a tensor's dimensions; None where a dimension is symbolic or unknown."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _check_graph(manifest: ModelManifest) -> None:
    where = f"model {manifest.path} (manifest {manifest.manifest_path})"
    try:
        # Structure only: the weights are the session's business, and may be large or external.
        graph = onnx.load(str(manifest.path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends without a common base
        raise ConfigurationError(f"{where}: not a readable ONNX file: {exc}") from None

    initialisers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ConfigurationError(f"{where}: expected one image input, found {[i.name for i in inputs]}")
    dims = _dims(inputs[0])
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ConfigurationError(f"{where}: input must be NCHW with 3 channels, got shape {dims}")
    width, height = manifest.input_size
    if (dims[2] is not None and dims[2] != height) or (dims[3] is not None and dims[3] != width):
        raise ConfigurationError(
            f"{where}: input_size is [{width}, {height}] (width, height) but the graph's input is "
            f"{dims[3]}x{dims[2]}"
        )

    if not graph.output:
        raise ConfigurationError(f"{where}: the graph has no output")
    out = _dims(graph.output[0])
    nc = len(manifest.classes)
    if len(out) != 3:
        raise ConfigurationError(f"{where}: output must be 3-D (batch, ..., ...) got shape {out}")
    v8_ok = out[1] in (None, 4 + nc)
    v5_ok = out[2] in (None, 5 + nc)
    fits = {"v8": v8_ok, "v5": v5_ok, "auto": v8_ok or v5_ok}[manifest.layout]
    if not fits:
        expected = {
            "v8": f"(batch, {4 + nc}, N)",
            "v5": f"(batch, N, {5 + nc})",
            "auto": f"(batch, {4 + nc}, N) or (batch, N, {5 + nc})",
        }[manifest.layout]
        raise ConfigurationError(
            f"{where}: output shape {out} does not fit layout {manifest.layout!r} with {nc} classes: "
            f"expected {expected}"
        )
