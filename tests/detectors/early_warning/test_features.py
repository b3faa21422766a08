"""The feature row (`detectors.early_warning.features.window_features`) of a known window."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.early_warning import FEATURES, window_features


def test_window_features_of_a_steady_approach() -> None:
    minutes = np.arange(-29, 1, dtype=np.float64)
    margins = 0.5 - 0.02 * minutes  # 1.08 half an hour ago, 0.5 now, losing 0.02 a minute
    row = window_features(
        minutes, margins, channel=0, hold_min=15, door_open_min=0, since_door_min=60, door_opens=0
    )
    f = dict(zip(FEATURES, row.tolist(), strict=True))
    assert f["margin"] == pytest.approx(0.5) and f["approach15"] == pytest.approx(0.02, rel=1e-4)
    assert f["eta15_min"] == pytest.approx(25, rel=1e-3) and f["rising_min"] == 29
    assert f["curvature30"] == pytest.approx(0, abs=1e-6) and f["resid30"] == pytest.approx(0, abs=1e-6)
    assert f["is_freezer_temperature"] == 1 and f["coverage"] == 1
    assert row.dtype == np.float32 and row.shape == (len(FEATURES),)
