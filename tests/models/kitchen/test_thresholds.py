"""Operating scores from held-out figures (pure logic)."""

from __future__ import annotations

import math

import pytest

from models.kitchen.thresholds import rewrite, rounded

MANIFEST = """name = "kitchen"
score_threshold = 0.25

[violations.without_mask]
code = "KITCHEN_NO_MASK"
min_score = 0.5

[violations.cigarette]
code = "KITCHEN_SMOKING"
min_score = 0.5
"""


def test_scores_round_down_to_a_step_and_weak_classes_stay_confident() -> None:
    assert rounded(0.263, f1=0.6) == pytest.approx(0.25)
    assert rounded(0.04, f1=0.6) == pytest.approx(0.1)  # never below MIN_SCORE
    assert rounded(0.2, f1=0.1) == 0.5  # too weak to raise at its best-F1 score
    assert rounded(math.nan, f1=0.0) == 0.5


def test_rewrite_sets_each_class_and_lowers_the_prefilter_only_when_needed() -> None:
    text = rewrite(MANIFEST, {"without_mask": 0.3, "cigarette": 0.15})
    assert 'code = "KITCHEN_NO_MASK"\nmin_score = 0.30' in text
    assert 'code = "KITCHEN_SMOKING"\nmin_score = 0.15' in text
    assert "score_threshold = 0.15" in text
    assert "score_threshold = 0.25" in rewrite(MANIFEST, {"without_mask": 0.3, "cigarette": 0.4})
    with pytest.raises(ValueError, match=r"violations\.rat"):
        rewrite(MANIFEST, {"rat": 0.3})
