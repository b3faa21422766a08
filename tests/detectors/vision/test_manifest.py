"""Model manifests: every field checked, errors that name the file and the field, and the ONNX
graph cross-checked against what the manifest says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from detectors.vision.manifest import default_models_dir, find_manifest, load_manifest
from vigil.errors import ConfigurationError

Dim = int | str
Writer = Callable[..., Path]


def _onnx(path: Path, inputs: list[Dim], outputs: list[Dim]) -> None:
    """A graph with the given declared shapes; only its structure is read by load_manifest."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "shapes",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, inputs)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, outputs)],
    )
    onnx.save(helper.make_model(graph), str(path))


BODY = """\
name = "kitchen"
file = "kitchen.onnx"
type = "yolo"
layout = "v8"
input_size = [320, 256]
classes = ["without_mask", "cigarette", "person"]
score_threshold = 0.35
iou_threshold = 0.45
max_detections = 50
description = "test"

[violations.without_mask]
code = "KITCHEN_NO_MASK"
min_score = 0.5
"""


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Writes the manifest (BODY with replacements) and a graph that fits BODY unless told."""

    def _write(
        body: str = BODY,
        replace: dict[str, str] | None = None,
        inputs: list[Dim] | None = None,
        outputs: list[Dim] | None = None,
    ) -> Path:
        for old, new in (replace or {}).items():
            assert old in body, old
            body = body.replace(old, new)
        _onnx(tmp_path / "kitchen.onnx", inputs or ["batch", 3, 256, 320], outputs or ["batch", 7, "anchors"])
        path = tmp_path / "kitchen.toml"
        path.write_text(body, encoding="utf-8")
        return path

    return _write


def test_a_good_manifest_loads(write: Writer) -> None:
    path = write()
    m = load_manifest(path)
    assert m.name == "kitchen" and m.type == "yolo" and m.layout == "v8"
    assert m.path == path.parent / "kitchen.onnx" and m.path.is_absolute()
    assert m.input_size == (320, 256)
    assert m.classes == ("without_mask", "cigarette", "person")
    assert (m.score_threshold, m.iou_threshold, m.max_detections) == (0.35, 0.45, 50)
    assert set(m.violations) == {"without_mask"}  # person is context: detected, raises nothing
    assert m.violations["without_mask"].code == "KITCHEN_NO_MASK"
    assert m.violations["without_mask"].min_score == 0.5


def test_optional_fields_have_defaults(write: Writer) -> None:
    body = "\n".join(
        line
        for line in BODY.splitlines()
        if line.split(" ")[0] in {"name", "file", "type", "input_size", "classes"}
    )
    m = load_manifest(write(body))
    assert m.layout == "auto" and m.max_detections == 100 and m.violations == {}


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            {'description = "test"': 'colour = "red"'},
            r"unknown keys \['colour'\] for a model manifest; expected some of channel_order, classes,",
        ),
        ({'name = "kitchen"\n': ""}, "name: missing"),
        ({'file = "kitchen.onnx"': 'file = "nope.onnx"'}, "file: .*nope.onnx does not exist"),
        ({'layout = "v8"': 'layout = "v9"'}, "layout: expected 'v8', 'v5', 'yolox' or 'auto', got 'v9'"),
        (
            {"input_size = [320, 256]": "input_size = [320]"},
            r"input_size: expected \[width, height\], two positive integers, got \[320\]",
        ),
        (
            {'classes = ["without_mask", "cigarette", "person"]': "classes = []"},
            r"classes: expected a non-empty list, got \[\]",
        ),
        ({'"person"]': '"cigarette"]'}, "classes: duplicated: cigarette"),
        ({"score_threshold = 0.35": "score_threshold = 1.5"}, "score_threshold: expected a number strictly"),
        ({"score_threshold = 0.35": "score_threshold = 0"}, "score_threshold: expected a number strictly"),
        (
            {"iou_threshold = 0.45": "iou_threshold = true"},
            "iou_threshold: expected a number strictly between 0 and 1, got True",
        ),
        (
            {"max_detections = 50": "max_detections = 0"},
            "max_detections: expected a whole number of at least 1, got 0",
        ),
        ({"[violations.without_mask]": "[violations.rat]"}, r"violations.rat: class 'rat' is not in classes"),
        (
            {'code = "KITCHEN_NO_MASK"': 'code = "KITCHEN_NO_TIE"'},
            "violations.without_mask.code: 'KITCHEN_NO_TIE'",
        ),
        (
            {"min_score = 0.5": "min_score = 1.0"},
            "violations.without_mask.min_score: expected a number strictly",
        ),
        ({"min_score = 0.5": "min_score = 0.2"}, "min_score: 0.2 is below score_threshold 0.35"),
        ({"min_score = 0.5": "min_score = 0.5\nlevel = 3"}, "violations.without_mask: unknown key"),
        ({'name = "kitchen"': 'name = "kitchen'}, "cannot read it"),
    ],
)
def test_bad_fields_are_named_with_the_file(write: Writer, replace: dict[str, str], message: str) -> None:
    path = write(replace=replace)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("inputs", "outputs", "replace", "message"),
    [
        (["batch", 3, 320, 320], None, None, r"input_size is \[320, 256\] .* graph's input is 320x320"),
        (["batch", 1, 256, 320], None, None, "NCHW with 3 channels"),
        (["batch", 256, 320, 3], None, None, "NCHW with 3 channels"),
        (None, ["batch", 84, 8400], None, "does not fit layout 'v8' with 3 classes"),
        (None, ["batch", 8400, 8], {'layout = "v8"': 'layout = "v5"'}, None),  # fits v5: no error
        (None, ["batch", 8400, 7], {'layout = "v8"': 'layout = "v5"'}, r"expected \(batch, N, 8\)"),
        (None, ["batch", 9, 9], {'layout = "v8"': 'layout = "auto"'}, "does not fit layout 'auto'"),
        (None, ["batch", 7], None, "output must be 3-D"),
        (["batch", 3, "h", "w"], ["batch", "x", "y"], None, None),  # dynamic: nothing to check
    ],
)
def test_the_graph_must_agree_with_the_manifest(
    write: Writer,
    inputs: list[Dim] | None,
    outputs: list[Dim] | None,
    replace: dict[str, str] | None,
    message: str | None,
) -> None:
    path = write(replace=replace, inputs=inputs, outputs=outputs)
    if message is None:
        load_manifest(path)
        return
    with pytest.raises(ConfigurationError, match=message):
        load_manifest(path)


def test_a_file_that_is_not_onnx_is_refused(write: Writer) -> None:
    path = write()
    (path.parent / "kitchen.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="not a readable ONNX file"):
        load_manifest(path)


def test_find_manifest_by_name_and_by_path(write: Writer) -> None:
    assert find_manifest("sim-markers") == default_models_dir().resolve() / "sim-markers.toml"
    path = write()
    assert find_manifest(str(path)) == path.resolve()
    assert find_manifest(path) == path.resolve()
    with pytest.raises(ConfigurationError, match=r"no model named 'kitchen-v9'.*known models: .*sim-markers"):
        find_manifest("kitchen-v9")
    with pytest.raises(ConfigurationError, match="does not exist"):
        find_manifest(path.parent / "other.toml")


def test_the_bundled_manifest_is_valid() -> None:
    m = load_manifest(find_manifest("sim-markers"))
    assert m.classes == ("without_mask", "cigarette", "rat")
    assert {v.code for v in m.violations.values()} == {"KITCHEN_NO_MASK", "KITCHEN_SMOKING", "KITCHEN_RODENT"}
