"""The mAP arithmetic (pure logic) against hand-worked cases."""

from __future__ import annotations

import numpy as np

from models.kitchen.evaluate import IOU_THRESHOLDS, average_precision, match_detections


def test_a_perfect_detector_scores_one_and_a_silent_one_zero() -> None:
    gt = np.array([[10, 10, 50, 50], [60, 60, 90, 90]], dtype=np.float32)
    tp = match_detections(gt.copy(), np.array([0.9, 0.8]), gt)
    assert tp.all()
    assert np.allclose(average_precision(tp, np.array([0.9, 0.8]), 2), 1.0)
    empty = np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
    assert np.allclose(average_precision(empty, np.zeros(0), 2), 0.0)


def test_a_duplicate_box_is_a_false_positive_and_a_loose_box_only_counts_at_low_iou() -> None:
    gt = np.array([[0, 0, 100, 100]], dtype=np.float32)
    dets = np.array([[0, 0, 100, 100], [0, 0, 100, 100], [0, 0, 100, 58]], dtype=np.float32)
    tp = match_detections(dets, np.array([0.9, 0.8, 0.95]), gt)
    # The loose box (IoU 0.58) has the highest score: it takes the match at 0.5 and 0.55 ...
    assert tp[2, 0] and tp[2, 1] and not tp[2, 2]
    # ... and the exact boxes match only where it could not.
    assert tp[:, 0].sum() == 1 and tp[:, 9].sum() == 1


def test_half_the_objects_found_at_full_precision_is_about_half_ap() -> None:
    tp = np.ones((1, len(IOU_THRESHOLDS)), dtype=bool)
    ap = average_precision(tp, np.array([0.9]), 2)
    assert 0.49 < ap[0] < 0.52  # 51 of the 101 recall points are reached
