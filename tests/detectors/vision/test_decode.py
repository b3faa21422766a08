"""YOLO post-processing on hand-made raw outputs: layouts, thresholds, class-wise NMS, the cap,
and mapping boxes from the letterboxed input back to the original image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from detectors.vision.backends import PreparedBatch
from detectors.vision.backends.yolo import decode_yolo, resolve_layout
from detectors.vision.detections import Detections
from detectors.vision.manifest import Layout

NC = 3
Box = tuple[float, float, float, float, int, float]  # cx, cy, w, h (input px), class, score


def _identity(count: int = 1, size: tuple[int, int] = (320, 320)) -> PreparedBatch:
    """A batch whose images were already input-sized: no scaling, no padding."""
    return PreparedBatch(
        tensor=np.zeros((count, 3, 1, 1), np.float32),
        count=count,
        scale=np.ones((count, 2), np.float32),
        pad=np.zeros((count, 2), np.float32),
        sizes=np.tile(np.array(size, np.int32), (count, 1)),
    )


def _v8(*images: Sequence[Box], candidates: int = 20) -> np.ndarray:
    out = np.zeros((len(images), 4 + NC, candidates), np.float32)
    for i, boxes in enumerate(images):
        for j, (cx, cy, w, h, cls, score) in enumerate(boxes):
            out[i, :4, j] = (cx, cy, w, h)
            out[i, 4 + cls, j] = score
    return out


def _decode(output: np.ndarray, prepared: PreparedBatch | None = None, **overrides: Any) -> list[Detections]:
    options: dict[str, Any] = {
        "layout": "v8",
        "num_classes": NC,
        "score_threshold": 0.35,
        "iou_threshold": 0.45,
        "max_detections": 100,
    } | overrides
    return decode_yolo(output, prepared or _identity(output.shape[0]), **options)


def test_v8_boxes_come_back_as_xyxy_with_class_and_score() -> None:
    (d,) = _decode(_v8([(100, 50, 20, 10, 2, 0.9)]))
    assert d.xyxy.tolist() == [[90, 45, 110, 55]]
    assert d.class_id.tolist() == [2]
    assert d.confidence.tolist() == pytest.approx([0.9])


def test_the_best_class_of_a_candidate_wins() -> None:
    out = _v8([(100, 50, 20, 10, 0, 0.5)])
    out[0, 4 + 1, 0] = 0.8
    (d,) = _decode(out)
    assert d.class_id.tolist() == [1] and d.confidence.tolist() == pytest.approx([0.8])


def test_candidates_under_the_score_threshold_are_dropped() -> None:
    (d,) = _decode(_v8([(100, 50, 20, 10, 0, 0.34), (200, 50, 20, 10, 1, 0.36)]))
    assert d.class_id.tolist() == [1]


def test_v5_multiplies_objectness_into_the_class_scores() -> None:
    out = np.zeros((1, 10, 5 + NC), np.float32)
    out[0, 0, :5] = (100, 50, 20, 10, 0.9)  # objectness 0.9 x class 0.8 = 0.72: kept
    out[0, 0, 5 + 1] = 0.8
    out[0, 1, :5] = (200, 50, 20, 10, 0.3)  # 0.3 x 0.9 = 0.27: under the threshold
    out[0, 1, 5 + 2] = 0.9
    (d,) = _decode(out, layout="v5")
    assert d.xyxy.tolist() == [[90, 45, 110, 55]]
    assert d.class_id.tolist() == [1] and d.confidence.tolist() == pytest.approx([0.72])


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ((1, 4 + NC, 100), "auto", "v8"),
        ((1, 100, 5 + NC), "auto", "v5"),
        ((1, 4 + NC, 5 + NC), "auto", "v8"),  # fits both: v8, the layout of current exports
        ((1, 4 + NC, 5 + NC), "v5", "v5"),
    ],
)
def test_layout_resolution(shape: tuple[int, ...], layout: Layout, expected: str) -> None:
    assert resolve_layout(shape, NC, layout) == expected


@pytest.mark.parametrize(
    ("shape", "layout"), [((1, 9, 100), "auto"), ((1, 100, 5 + NC), "v8"), ((7, 100), "auto")]
)
def test_shapes_that_fit_no_layout_are_refused(shape: tuple[int, ...], layout: Layout) -> None:
    with pytest.raises(ValueError, match="shape"):
        resolve_layout(shape, NC, layout)


def test_auto_layout_decodes_both() -> None:
    (v8,) = _decode(_v8([(100, 50, 20, 10, 2, 0.9)]), layout="auto")
    v5 = np.zeros((1, 10, 5 + NC), np.float32)
    v5[0, 0, :5], v5[0, 0, 5 + 2] = (100, 50, 20, 10, 1.0), 0.9
    (from_v5,) = _decode(v5, layout="auto")
    assert v8.xyxy.tolist() == from_v5.xyxy.tolist() == [[90, 45, 110, 55]]


def test_nms_is_class_wise() -> None:
    same = [(100, 100, 40, 40, 0, 0.9), (104, 100, 40, 40, 0, 0.8)]  # IoU 0.82, one class
    other = [(100, 100, 40, 40, 0, 0.9), (104, 100, 40, 40, 1, 0.8)]  # same boxes, two classes
    apart = [(100, 100, 40, 40, 0, 0.9), (130, 100, 40, 40, 0, 0.8)]  # IoU 0.14
    kept_same, kept_other, kept_apart = _decode(_v8(same, other, apart))
    assert kept_same.confidence.tolist() == pytest.approx([0.9])
    assert sorted(kept_other.class_id.tolist()) == [0, 1]
    assert len(kept_apart) == 2


def test_the_cap_keeps_the_best_scores_in_order() -> None:
    boxes = [(20 + 40 * k, 100, 20, 20, k % NC, 0.4 + 0.1 * k) for k in range(5)]
    (d,) = _decode(_v8(boxes), max_detections=3)
    assert d.confidence.tolist() == pytest.approx([0.8, 0.7, 0.6])


def test_images_of_a_batch_are_decoded_apart() -> None:
    a, empty, b = _decode(_v8([(100, 50, 20, 10, 0, 0.9)], [], [(10, 10, 4, 4, 2, 0.5)]))
    assert (len(a), len(empty), len(b)) == (1, 0, 1)
    assert b.class_id.tolist() == [2]


def test_rows_past_count_are_padding_and_ignored() -> None:
    out = _v8([(100, 50, 20, 10, 0, 0.9)], [(100, 50, 20, 10, 0, 0.9)])
    assert len(_decode(out, _identity(count=1))) == 1


def test_boxes_map_back_through_the_letterbox_of_a_non_square_image() -> None:
    # A 640x480 frame in a 320x320 input: scaled by 0.5 to 320x240, 40 px of grey above and below.
    prepared = PreparedBatch(
        tensor=np.zeros((1, 3, 320, 320), np.float32),
        count=1,
        scale=np.array([[0.5, 0.5]], np.float32),
        pad=np.array([[0, 40]], np.float32),
        sizes=np.array([[640, 480]], np.int32),
    )
    inside = (160, 140, 20, 10, 0, 0.9)  # input (150, 135)-(170, 145)
    astride = (10, 50, 40, 40, 1, 0.9)  # reaches into the top padding and off the left edge
    (d,) = _decode(_v8([inside, astride]), prepared)
    by_class = {int(c): box.tolist() for c, box in zip(d.class_id, d.xyxy, strict=True)}
    assert by_class[0] == pytest.approx([300, 190, 340, 210])
    assert by_class[1] == pytest.approx([0, 0, 60, 60])  # (-10, 30)-(30, 70) -> clipped at 0


def test_negative_sizes_from_an_untrained_head_do_not_break_nms() -> None:
    (d,) = _decode(_v8([(100, 100, -5, -5, 0, 0.9), (100, 100, 20, 20, 0, 0.8)]))
    assert len(d) == 2  # an empty box overlaps nothing
