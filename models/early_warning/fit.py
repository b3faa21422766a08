"""The model and the rows it is fitted on: gradient-boosted trees with a fixed seed.

scikit-learn's GradientBoostingClassifier; scikit-learn is the `train` extra, so it is imported
only when fitting, and everything else here runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.early_warning.channels import MINUTE_MS
from models.early_warning.simulation import Simulated

TREES, DEPTH = 200, 3
NORMAL_STRIDE = 2  # of normal days' rows, train on every second minute


def training_arrays(sims: Sequence[Simulated]) -> tuple[np.ndarray, np.ndarray]:
    """The rows to fit on: those not left out, of normal days every `NORMAL_STRIDE`-th minute (one
    minute's window is nearly the next one's; the faults keep every row)."""
    xs, ys = [], []
    for s in sims:
        keep = s.y >= 0
        if s.episode.kind == "normal":
            keep &= (s.ts // MINUTE_MS) % NORMAL_STRIDE == 0
        xs.append(s.x[keep])
        ys.append(s.y[keep])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def fit(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    # The classic GradientBoostingClassifier: skl2onnx cannot export HistGradientBoosting with the
    # onnx release Vigil uses (it writes booleans where onnx now wants ints).
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(
        n_estimators=TREES,
        max_depth=DEPTH,
        learning_rate=0.1,
        subsample=0.5,
        min_samples_leaf=50,
        random_state=seed,
    )
    model.fit(x, y)
    return model
