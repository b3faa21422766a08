"""Model manifests: the TOML file that travels next to each ONNX detector.

The manifest says how to feed the model, how to read its output and what its classes mean for
supervision, so plugging in a new model is a file drop, not a code change:

```toml
name = "sim-markers"
file = "sim-markers.onnx"          # the ONNX file, relative to this manifest
type = "yolo"                      # the backend plugin (see detectors.vision.backends)
layout = "v8"                      # "v8" (also YOLOv11): (B, 4+nc, N), no objectness
                                   # "v5": (B, N, 5+nc) with objectness; "auto": told by shape
                                   # "yolox": (B, N, 5+nc), boxes relative to stride 8/16/32 grids
channel_order = "rgb"              # "rgb" or "bgr"; default "bgr" for yolox, else "rgb"
pixel_range = "0..1"               # "0..1" or "0..255"; default "0..255" for yolox, else "0..1"
input_size = [320, 320]            # width, height of the letterboxed input
classes = ["without_mask", "cigarette", "rat"]
score_threshold = 0.35             # candidates below are dropped before NMS
iou_threshold = 0.45               # class-wise NMS overlap limit
max_detections = 100               # cap per image after NMS
description = "..."

[violations.without_mask]          # class name -> violation code and the score it needs
code = "KITCHEN_NO_MASK"
min_score = 0.5
when = "always"                    # or "closed": only while the camera's site is closed

[violations."cell phone"]          # a relation between two classes (detectors.vision.held)
code = "KITCHEN_PHONE_USE"
min_score = 0.35
held_by = "person"                 # counts only inside a confident box of this class
holder_min_score = 0.5             # the score the holder's box needs
held_inside = 0.6                  # the share of the object's box that must lie in the holder's
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
from typing import Annotated, Any, Literal, get_args

import onnx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from vigil.catalogue import catalogue
from vigil.config_errors import explain, key_path
from vigil.errors import ConfigurationError, show

Layout = Literal["v8", "v5", "yolox", "auto"]
LAYOUTS: tuple[Layout, ...] = get_args(Layout)
ChannelOrder = Literal["rgb", "bgr"]
PixelRange = Literal["0..1", "0..255"]
When = Literal["always", "closed"]
# YOLOX heads predict on three grids; its anchor points are every cell of each, stride 8 first.
YOLOX_STRIDES = (8, 16, 32)

# Defaults follow the Ultralytics export conventions, so a manifest for a stock model stays short.
_DEFAULT_SCORE = 0.25
_DEFAULT_IOU = 0.45
_DEFAULT_MAX_DETECTIONS = 100
_DEFAULT_MIN_SCORE = 0.5
# Half of a held object's box inside its holder's: a phone at the ear pokes out of a tight person
# box; a manifest that measured better (coco-person-phone) sets its own.
_DEFAULT_HELD_INSIDE = 0.5


@dataclass(frozen=True, slots=True)
class ClassViolation:
    """What one detected class means: the catalogue code, and the score a box needs to count."""

    code: str
    min_score: float
    # "closed": the finding only counts while the camera's site is outside its opening hours (a
    # person in the kitchen is normal at noon and a finding at 3 a.m.).
    when: When = "always"
    # Another class whose box must hold this one's (a phone held by a person), else None.
    held_by: HeldBy | None = None


@dataclass(frozen=True, slots=True)
class HeldBy:
    """`held_by`: the class counts only where a confident box of `holder` contains it."""

    holder: str
    min_score: float
    min_inside: float  # share of the object's box area inside the holder's box


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
    # What the input tensor holds: Ultralytics exports want RGB 0..1, YOLOX exports raw BGR 0..255.
    channel_order: ChannelOrder = "rgb"
    pixel_range: PixelRange = "0..1"


def yolox_anchor_points(width: int, height: int) -> int:
    """How many candidates a YOLOX head emits for an input of this size (one per grid cell)."""
    return sum((width // s) * (height // s) for s in YOLOX_STRIDES)


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
#
# The file's structure is pydantic models; what needs the rest of the manifest or the disk (the
# ONNX file exists, each [violations.<class>] names a class and can be reached) is a second step.


def _error(source: Path, field: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"model manifest {source}: {field}: {message}")


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError(f"expected a non-empty string, got {show(value)}")
    return value


def _size(value: object) -> tuple[int, int]:
    # bool is an int subclass: `true` must not pass as 1.
    sizes = value if isinstance(value, list) and len(value) == 2 else []
    if not sizes or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        raise ValueError(f"expected [width, height], two positive integers, got {show(value)}")
    return sizes[0], sizes[1]


def _catalogued(code: str) -> str:
    if code not in catalogue():
        raise ValueError(f"{show(code)} is not a code in the violation catalogue")
    return code


def _fraction(value: object) -> float:
    # bool is an int subclass: `true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"expected a number strictly between 0 and 1, got {show(value)}")
    return float(value)


Text = Annotated[str, AfterValidator(_text)]
Fraction = Annotated[float, PlainValidator(_fraction)]


class _Table(BaseModel):
    """A table of a manifest: no unknown keys, strict types (a number is never a string or a bool)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _ManifestTable(_Table):
    model_config = ConfigDict(title="model manifest")

    name: Text
    file: Text  # relative to the manifest
    type: Text
    layout: Layout = "auto"
    channel_order: ChannelOrder | None = None  # None: by layout (see _ManifestTable defaults)
    pixel_range: PixelRange | None = None
    input_size: Annotated[tuple[int, int], PlainValidator(_size)]  # width, height
    classes: Annotated[list[Text], Field(min_length=1)]
    score_threshold: Fraction = _DEFAULT_SCORE
    iou_threshold: Fraction = _DEFAULT_IOU
    max_detections: int = Field(_DEFAULT_MAX_DETECTIONS, ge=1)
    description: str = ""
    violations: dict[str, dict[str, Any]] = {}  # each checked by _ViolationTable, against the classes

    @field_validator("classes")
    @classmethod
    def _unique(cls, classes: list[str]) -> list[str]:
        duplicated = sorted({c for c in classes if classes.count(c) > 1})
        if duplicated:
            raise ValueError(f"duplicated: {', '.join(duplicated)}")
        return classes


class _ViolationTable(_Table):
    """`[violations.<class>]`, validated with the manifest's score_threshold as context."""

    model_config = ConfigDict(title="violation")

    code: Annotated[str, AfterValidator(_catalogued)]
    min_score: Fraction = Field(_DEFAULT_MIN_SCORE, validate_default=True)
    when: When = "always"
    held_by: Text | None = None  # checked against the classes in _parse
    holder_min_score: Fraction = Field(_DEFAULT_MIN_SCORE, validate_default=True)
    held_inside: Fraction = _DEFAULT_HELD_INSIDE

    @field_validator("min_score", "holder_min_score")
    @classmethod
    def _reachable(cls, min_score: float, info: ValidationInfo) -> float:
        score = info.context
        assert isinstance(score, float), "validated with the manifest's score_threshold as context"
        if min_score < score:
            # Candidates under score_threshold never reach the rule: a lower min_score would
            # silently mean score_threshold, which is not what its author wrote.
            raise ValueError(f"{min_score} is below score_threshold {score}, so it is unreachable")
        return min_score


def _parse(source: Path, raw: Mapping[str, object]) -> ModelManifest:
    where = f"model manifest {source}"
    try:
        table = _ManifestTable.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(explain(exc, _ManifestTable, where)) from None

    model_path = (source.parent / table.file).resolve()
    if not model_path.is_file():
        raise _error(source, "file", f"{model_path} does not exist")
    rules: dict[str, ClassViolation] = {}
    for class_name, rule_raw in table.violations.items():
        at = ("violations", class_name)
        if class_name not in table.classes:
            raise _error(source, key_path(at), f"class {show(class_name)} is not in classes {table.classes}")
        try:
            rule = _ViolationTable.model_validate(rule_raw, context=table.score_threshold)
        except ValidationError as exc:
            raise ConfigurationError(explain(exc, _ViolationTable, where, at=at)) from None
        holder = None
        if rule.held_by is not None:
            if rule.held_by not in table.classes or rule.held_by == class_name:
                raise _error(
                    source,
                    key_path((*at, "held_by")),
                    f"{show(rule.held_by)} must be another class of {table.classes}",
                )
            holder = HeldBy(rule.held_by, rule.holder_min_score, rule.held_inside)
        rules[class_name] = ClassViolation(
            code=rule.code, min_score=rule.min_score, when=rule.when, held_by=holder
        )

    yolox = table.layout == "yolox"
    return ModelManifest(
        name=table.name,
        path=model_path,
        manifest_path=source,
        type=table.type,
        layout=table.layout,
        input_size=table.input_size,
        classes=tuple(table.classes),
        score_threshold=table.score_threshold,
        iou_threshold=table.iou_threshold,
        max_detections=table.max_detections,
        description=table.description,
        violations=MappingProxyType(rules),
        # The conventions of each family's exporter, so a stock export needs neither key.
        channel_order=table.channel_order or ("bgr" if yolox else "rgb"),
        pixel_range=table.pixel_range or ("0..255" if yolox else "0..1"),
    )


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
    # A YOLOX head has exactly one candidate per grid cell: a count that differs means another
    # input size or other strides, and the grid decoding would put every box in the wrong place.
    points = yolox_anchor_points(width, height)
    yolox_ok = v5_ok and out[1] in (None, points)
    fits = {"v8": v8_ok, "v5": v5_ok, "yolox": yolox_ok, "auto": v8_ok or v5_ok}[manifest.layout]
    if not fits:
        expected = {
            "v8": f"(batch, {4 + nc}, N)",
            "v5": f"(batch, N, {5 + nc})",
            "yolox": f"(batch, {points}, {5 + nc})",
            "auto": f"(batch, {4 + nc}, N) or (batch, N, {5 + nc})",
        }[manifest.layout]
        raise ConfigurationError(
            f"{where}: output shape {out} does not fit layout {manifest.layout!r} with {nc} classes: "
            f"expected {expected}"
        )
