"""Zones, temporal confirmation and cooldown (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.vision.confirm import CameraConfirmer, Hit, in_zones, points_in_polygon
from detectors.vision.detections import Detections
from vigil.cameras import Zone

CODES = ("KITCHEN_NO_MASK", "KITCHEN_RODENT")


def boxes(*xyxy: tuple[float, float, float, float]) -> Detections:
    n = len(xyxy)
    return Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, dtype=np.float32),
        class_id=np.zeros(n, dtype=np.int32),
    )


def hit(ts: int, score: float = 0.9) -> Hit:
    return Hit(ts, score, boxes((0, 0, 10, 10)), frame_ref=f"frame@{ts}")


def test_points_in_a_concave_polygon() -> None:
    # An L shape: the notch at the top right is outside.
    poly = np.array([[0, 0], [0.5, 0], [0.5, 0.5], [1, 0.5], [1, 1], [0, 1]], dtype=float)
    pts = np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [1.5, 0.5]])
    assert points_in_polygon(pts, poly).tolist() == [True, False, True, False]


def test_zones_restrict_only_the_codes_they_name() -> None:
    prep = Zone("prep", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)), frozenset({"KITCHEN_NO_MASK"}))
    found = boxes((100, 100, 140, 140), (100, 400, 140, 440))  # upper half, lower half of 640x480
    assert in_zones(found, (prep,), "KITCHEN_NO_MASK", 640, 480).tolist() == [False, True]
    assert in_zones(found, (prep,), "KITCHEN_RODENT", 640, 480).tolist() == [True, True]
    assert in_zones(found, (), "KITCHEN_NO_MASK", 640, 480).tolist() == [True, True]


def test_an_exclusion_zone_removes_its_codes_inside_it_and_leaves_the_rest() -> None:
    # A kitchen camera: the stove (left half) is an exclusion zone for flames; a flame there is
    # cooking, the same flame on the right is a fire. Other codes are untouched by it.
    left = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
    stove = Zone("stove", left, frozenset({"FIRE_OPEN_FLAME"}), exclude=True)
    found = boxes((100, 100, 140, 140), (500, 100, 540, 140))  # left half, right half of 640x480
    assert in_zones(found, (stove,), "FIRE_OPEN_FLAME", 640, 480).tolist() == [False, True]
    assert in_zones(found, (stove,), "KITCHEN_SMOKING", 640, 480).tolist() == [True, True]
    # Beside an ordinary zone for the same code: inside that zone and outside the exclusion.
    top = Zone("top", ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (0.0, 0.5)), frozenset({"FIRE_OPEN_FLAME"}))
    lower = boxes((500, 400, 540, 440))
    assert in_zones(found, (top, stove), "FIRE_OPEN_FLAME", 640, 480).tolist() == [False, True]
    assert in_zones(lower, (top, stove), "FIRE_OPEN_FLAME", 640, 480).tolist() == [False]


def test_one_noisy_frame_confirms_nothing() -> None:
    c = CameraConfirmer(k=2, n=3, cooldown_ms=0)
    assert c.observe(1000, CODES, {"KITCHEN_NO_MASK": hit(1000)}) == []
    assert c.observe(2000, CODES, {}) == []
    assert c.observe(3000, CODES, {}) == []
    assert c.observe(4000, CODES, {"KITCHEN_NO_MASK": hit(4000)}) == []  # the first hit fell out of 3


def test_k_of_n_confirms_with_the_best_frame_and_the_first_hit_as_window_start() -> None:
    c = CameraConfirmer(k=2, n=3, cooldown_ms=0)
    c.observe(1000, CODES, {"KITCHEN_NO_MASK": hit(1000, 0.7)})
    c.observe(2000, CODES, {})
    [confirmed] = c.observe(3000, CODES, {"KITCHEN_NO_MASK": hit(3000, 0.95)})
    assert confirmed.code == "KITCHEN_NO_MASK"
    assert confirmed.window_start == 1000 and confirmed.hits == 2
    assert confirmed.best.frame_ref == "frame@3000"


def test_cooldown_silences_the_same_code_but_not_others() -> None:
    c = CameraConfirmer(k=1, n=1, cooldown_ms=60_000)
    assert len(c.observe(0, CODES, {"KITCHEN_NO_MASK": hit(0)})) == 1
    assert c.observe(30_000, CODES, {"KITCHEN_NO_MASK": hit(30_000)}) == []
    assert len(c.observe(30_000, CODES, {"KITCHEN_RODENT": hit(30_000)})) == 1
    assert len(c.observe(61_000, CODES, {"KITCHEN_NO_MASK": hit(61_000)})) == 1


@pytest.mark.parametrize(("k", "n", "cooldown"), [(0, 3, 0), (4, 3, 0), (1, 1, -1)])
def test_bad_parameters_are_refused(k: int, n: int, cooldown: int) -> None:
    with pytest.raises(ValueError):
        CameraConfirmer(k=k, n=n, cooldown_ms=cooldown)
