"""The model's input row: `FEATURES`, and `window_features`, the one function that computes them.

A row describes one watched metric's last `WINDOW_MIN` minutes as margins (see `channels`): where
it is, how fast and how steadily it is heading for the limit, how long it has been beyond it, and
a cold room's door. The runtime and the training script both reach `window_features` through
`DeviceTrack.features` (`track`), so training and runtime features cannot drift apart.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from detectors.early_warning.channels import CHANNELS, WINDOW_MIN

# Caps keep the features in a bounded range whatever a device sends.
ETA_CAP_MIN: Final = 240.0
DOOR_CAP_MIN: Final = 60.0
MARGIN_CAP: Final = 10.0
RATE_CAP: Final = 5.0
RUN_TOLERANCE: Final = 0.1  # margin units: noise a steady approach may show (0.4 °C in a freezer)

# The model's input columns, in order, and what each means (the model card lists them).
FEATURE_HELP: Final[dict[str, str]] = {
    "margin": "normalised distance to the limit at the latest reading (1 normal, 0 at the limit)",
    "margin_mean5": "its mean over the last 5 minutes",
    "margin_min30": "its lowest over the window",
    "margin_max30": "its highest over the window",
    "approach5": "margin lost per minute towards the limit (least-squares slope), last 5 minutes",
    "approach15": "the same over the last 15 minutes",
    "approach30": "the same over the whole window",
    "curvature30": "acceleration towards the limit (quadratic fit over the window), per minute²",
    "resid30": "spread about the window's straight line (a thermostat's saw-tooth, noise)",
    "eta5_min": f"minutes to the limit at approach5 (capped at {ETA_CAP_MIN:g}; 0 beyond it)",
    "eta15_min": "the same at approach15",
    "rising_min": "minutes since the window's safest reading",
    "run_min": "minutes the metric has been moving steadily towards the limit (noise tolerated)",
    "beyond_min": "minutes the metric has been beyond the limit (the latest run)",
    "hold_min": "the rule's hold time in minutes (a cold room's attr:duration_s; 10 s for a boiler)",
    "hold_left_min": "the hold time minus beyond_min, at least 0",
    "door_open_min": "cold rooms: minutes the door has been open now (0 when closed)",
    "since_door_min": f"minutes since the last door event (capped at {DOOR_CAP_MIN:g})",
    "door_opens30": "door openings in the window",
    "coverage": "share of the window's minutes with a reading",
    **{f"is_{c.name.replace('.', '_')}": f"1 for a row about the {c.profile}'s {c.metric}" for c in CHANNELS},
}
FEATURES: Final[tuple[str, ...]] = tuple(FEATURE_HELP)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        return 0.0
    dx = x - x.mean()
    sxx = float(dx @ dx)
    return float(dx @ (y - y.mean())) / sxx if sxx > 0 else 0.0


def _eta(margin: float, approach: float) -> float:
    if margin <= 0:
        return 0.0
    if approach <= 1e-9:
        return ETA_CAP_MIN
    return min(ETA_CAP_MIN, margin / approach)


def _run(x: np.ndarray, y: np.ndarray) -> float:
    """Minutes of the latest steady approach: back from the latest reading for as long as every
    earlier reading was at least as far from the limit as the later ones, within `RUN_TOLERANCE`."""
    values = y.tolist()
    later_max = values[-1]
    start = len(values) - 1
    for i in range(len(values) - 2, -1, -1):
        if values[i] < later_max - RUN_TOLERANCE:
            break  # nearer the limit than a later reading: the approach began after it
        later_max = max(later_max, values[i])
        start = i
    return float(x[-1] - x[start])


def _clip(x: float, cap: float) -> float:
    return max(-cap, min(cap, x))


def window_features(
    minutes: np.ndarray,
    margins: np.ndarray,
    *,
    channel: int,
    hold_min: float,
    door_open_min: float,
    since_door_min: float,
    door_opens: int,
) -> np.ndarray:
    """One model row: `minutes` (<= 0, the latest last) and `margins` of one metric's window.

    The one feature function: the runtime and the training script both reach it through
    `DeviceTrack.features`."""
    x, y = minutes, margins
    last = float(y[-1])
    recent5, recent15 = x > -5, x > -15
    approach5 = -_slope(x[recent5], y[recent5])
    approach15 = -_slope(x[recent15], y[recent15])
    approach30 = -_slope(x, y)
    curvature = 0.0
    if x.size >= 4 and float(x[-1] - x[0]) >= 3:
        a = np.vander(x, 3)
        coef, *_ = np.linalg.lstsq(a, y, rcond=None)
        curvature = -2.0 * float(coef[0])
    line = y - (y.mean() + (-approach30) * (x - x.mean()))
    resid = float(np.sqrt(np.mean(line * line)))
    beyond = 0.0
    if last < 0:
        safe = np.flatnonzero(y >= 0)
        first = int(safe[-1]) + 1 if safe.size else 0
        beyond = float(x[-1] - x[first]) + 1.0
    row = [
        _clip(last, MARGIN_CAP),
        _clip(float(y[recent5].mean()), MARGIN_CAP),
        _clip(float(y.min()), MARGIN_CAP),
        _clip(float(y.max()), MARGIN_CAP),
        _clip(approach5, RATE_CAP),
        _clip(approach15, RATE_CAP),
        _clip(approach30, RATE_CAP),
        _clip(curvature, RATE_CAP),
        min(resid, MARGIN_CAP),
        _eta(last, approach5),
        _eta(last, approach15),
        -float(x[int(np.argmax(y))]),
        _run(x, y),
        beyond,
        hold_min,
        max(0.0, hold_min - beyond),
        min(door_open_min, DOOR_CAP_MIN),
        min(since_door_min, DOOR_CAP_MIN),
        float(door_opens),
        x.size / WINDOW_MIN,
    ]
    onehot = [0.0] * len(CHANNELS)
    onehot[channel] = 1.0
    return np.asarray(row + onehot, dtype=np.float32)
