"""The Detections container: shapes are checked up front, with messages that name them."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.vision.detections import Detections


def _three() -> Detections:
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 45]], dtype=np.float64)
    return Detections(xyxy, np.array([0.9, 0.5, 0.7]), np.array([0, 2, 1], dtype=np.int64))


def test_arrays_are_coerced_to_the_documented_dtypes() -> None:
    d = _three()
    assert len(d) == 3
    assert d.xyxy.dtype == np.float32 and d.confidence.dtype == np.float32 and d.class_id.dtype == np.int32


def test_empty() -> None:
    d = Detections.empty()
    assert len(d) == 0 and d.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("xyxy", "confidence", "class_id", "message"),
    [
        (np.zeros((3, 5)), np.zeros(3), np.zeros(3, int), r"xyxy must have shape \(N, 4\), got \(3, 5\)"),
        (np.zeros(4), np.zeros(1), np.zeros(1, int), r"xyxy must have shape \(N, 4\), got \(4,\)"),
        (np.zeros((3, 4)), np.zeros((3, 1)), np.zeros(3, int), r"confidence must have shape \(N,\)"),
        (np.zeros((3, 4)), np.zeros(3), np.zeros((3, 2), int), r"class_id must have shape \(N,\)"),
        (np.zeros((3, 4)), np.zeros(2), np.zeros(3, int), "xyxy has 3 rows, confidence 2, class_id 3"),
        (np.zeros((2, 4)), np.zeros(2), np.zeros(2), "class_id must hold integers"),
    ],
)
def test_bad_shapes_are_refused_with_the_shape_in_the_message(
    xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, confidence, class_id)


def test_filter_by_mask_and_by_index() -> None:
    d = _three()
    kept = d.filter(d.confidence > 0.6)
    assert kept.class_id.tolist() == [0, 1]
    assert d.filter(np.array([2])).xyxy.tolist() == [[30, 30, 40, 45]]
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\)"):
        d.filter(np.array([True, False]))
