"""The YOLOX layout: grid decoding on a hand-made raw output, the manifest's cross-check of the
anchor-point count, and the shipped YOLOX-Nano COCO model finding people in real footage
(OpenCV's vtest.avi, people walking)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectors.vision.backends import PreparedBatch
from detectors.vision.backends.yolo import YoloOnnxBackend, decode_yolo, yolox_grids
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest, yolox_anchor_points
from vigil.errors import ConfigurationError

NC = 3
VIDEO = Path(__file__).resolve().parents[3].parent / "shared" / "video" / "vtest.avi"


def _identity(size: tuple[int, int]) -> PreparedBatch:
    return PreparedBatch(
        tensor=np.zeros((1, 3, 1, 1), np.float32),
        count=1,
        scale=np.ones((1, 2), np.float32),
        pad=np.zeros((1, 2), np.float32),
        sizes=np.array([size], np.int32),
    )


def _raw(width: int, height: int) -> np.ndarray:
    return np.zeros((1, yolox_anchor_points(width, height), 5 + NC), np.float32)


def _point(stride: int, col: int, row: int, width: int, height: int) -> int:
    """The anchor-point index of a cell, in the head's order (stride 8 grid first, row-major)."""
    index = 0
    for s in (8, 16, 32):
        if s == stride:
            return index + row * (width // s) + col
        index += (width // s) * (height // s)
    raise ValueError(stride)


def test_grids_cover_every_cell_of_the_three_strides() -> None:
    grid, stride = yolox_grids(64, 32)
    assert grid.shape == (8 * 4 + 4 * 2 + 2 * 1, 2) == (yolox_anchor_points(64, 32), 2)
    assert grid[:3].tolist() == [[0, 0], [1, 0], [2, 0]]
    assert grid[8].tolist() == [0, 1]  # row-major: the ninth stride-8 cell starts the second row
    assert stride[:32].ravel().tolist() == [8] * 32 and stride[-2:].ravel().tolist() == [32, 32]


def test_a_yolox_candidate_is_decoded_on_its_grid() -> None:
    width, height = 320, 256
    out = _raw(width, height)
    # Stride 16, cell (5, 3): centre (5 + 0.5) * 16, (3 + 0.25) * 16; size exp(ln 2) * 16 = 32 by
    # exp(0) * 16 = 16. Objectness 0.9 x class score 0.8 -> 0.72, class 2.
    i = _point(16, 5, 3, width, height)
    out[0, i, :5] = (0.5, 0.25, np.log(2.0), 0.0, 0.9)
    out[0, i, 5 + 2] = 0.8
    # Below the threshold once multiplied by objectness: dropped.
    j = _point(8, 1, 1, width, height)
    out[0, j, :5] = (0.0, 0.0, 0.0, 0.0, 0.3)
    out[0, j, 5 + 0] = 0.9
    (d,) = decode_yolo(
        out,
        _identity((width, height)),
        layout="yolox",
        num_classes=NC,
        score_threshold=0.35,
        iou_threshold=0.45,
        max_detections=10,
        input_size=(width, height),
    )
    assert d.class_id.tolist() == [2]
    assert d.confidence.tolist() == pytest.approx([0.72])
    assert d.xyxy[0].tolist() == pytest.approx([88 - 16, 52 - 8, 88 + 16, 52 + 8])


def test_a_garbage_size_is_clipped_not_overflowed() -> None:
    out = _raw(64, 64)
    out[0, 0, :5] = (0.0, 0.0, 1e4, 1e4, 1.0)
    out[0, 0, 5] = 1.0
    with np.errstate(over="raise"):
        (d,) = decode_yolo(
            out,
            _identity((64, 64)),
            layout="yolox",
            num_classes=NC,
            score_threshold=0.35,
            iou_threshold=0.45,
            max_detections=10,
            input_size=(64, 64),
        )
    assert d.xyxy.tolist() == [[0, 0, 64, 64]]  # clipped to the image


def test_yolox_needs_the_input_size_and_the_right_point_count() -> None:
    options = {"num_classes": NC, "score_threshold": 0.3, "iou_threshold": 0.45, "max_detections": 5}
    with pytest.raises(ValueError, match="needs the model's input_size"):
        decode_yolo(_raw(64, 64), _identity((64, 64)), layout="yolox", **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 84 anchor points"):
        decode_yolo(_raw(64, 64)[:, :80], _identity((64, 64)), layout="yolox", input_size=(64, 64), **options)  # type: ignore[arg-type]


MANIFEST = """\
name = "x"
file = "x.onnx"
type = "yolo"
layout = "yolox"
input_size = [64, 64]
classes = ["person", "cell phone", "cup"]
"""


def _graph(path: Path, points: int) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output"])],
        "shapes",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, points, 5 + NC])],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_the_manifest_checks_the_yolox_head_and_defaults_to_its_input_format(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(MANIFEST, encoding="utf-8")
    _graph(tmp_path / "x.onnx", 84)
    m = load_manifest(tmp_path / "x.toml")
    assert (m.layout, m.channel_order, m.pixel_range) == ("yolox", "bgr", "0..255")
    _graph(tmp_path / "x.onnx", 100)  # another input size or other strides
    with pytest.raises(ConfigurationError, match=r"expected \(batch, 84, 8\)"):
        load_manifest(tmp_path / "x.toml")


def test_a_manifest_may_override_the_input_format(tmp_path: Path) -> None:
    body = MANIFEST + 'channel_order = "rgb"\npixel_range = "0..1"\n'
    (tmp_path / "x.toml").write_text(body, encoding="utf-8")
    _graph(tmp_path / "x.onnx", 84)
    m = load_manifest(tmp_path / "x.toml")
    assert (m.channel_order, m.pixel_range) == ("rgb", "0..1")


# --- the shipped model on real footage ------------------------------------------------------------


@pytest.fixture(scope="module")
def coco() -> ModelManifest:
    return load_manifest(find_manifest("coco-person-phone"))


@pytest.fixture(scope="module")
def backend(coco: ModelManifest) -> Iterator[YoloOnnxBackend]:
    with YoloOnnxBackend(coco, intra_op_threads=1) as b:
        yield b


def video_frames(every: int, count: int) -> list[np.ndarray]:
    """`count` frames of vtest.avi, one in `every`; skips the test when the clip is absent."""
    if not VIDEO.is_file():
        pytest.skip(f"the shared clip {VIDEO} is absent")
    capture = cv2.VideoCapture(str(VIDEO))
    frames: list[np.ndarray] = []
    index = 0
    try:
        while len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    return frames


def test_the_shipped_manifest_matches_the_graph(coco: ModelManifest) -> None:
    assert len(coco.classes) == 80 and coco.classes[0] == "person" and coco.classes[67] == "cell phone"
    assert coco.layout == "yolox" and coco.input_size == (416, 416)
    assert coco.violations["person"].code == "KITCHEN_AFTER_HOURS_PRESENCE"
    assert coco.violations["person"].when == "closed"


def test_people_walking_are_found_with_sensible_boxes(coco: ModelManifest, backend: YoloOnnxBackend) -> None:
    frames = video_frames(every=40, count=10)
    person = coco.classes.index("person")
    found = backend.detect(frames)
    counts = []
    for frame, d in zip(frames, found, strict=True):
        people = d.filter((d.class_id == person) & (d.confidence >= coco.violations["person"].min_score))
        counts.append(len(people))
        h, w = frame.shape[:2]
        widths, heights = people.xyxy[:, 2] - people.xyxy[:, 0], people.xyxy[:, 3] - people.xyxy[:, 1]
        # Pedestrians seen from above and afar: upright boxes, tens of pixels to a third of the frame.
        assert np.all(heights > widths), people.xyxy
        assert np.all((heights > 20) & (heights < h / 2)), people.xyxy
        assert np.all((people.xyxy >= 0) & (people.xyxy[:, [2, 3]] <= [w, h]).all(axis=1)[:, None])
    # Several people are in view throughout the clip.
    assert sum(c >= 2 for c in counts) >= 8, counts
