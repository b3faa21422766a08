"""The warning state machine: when a device's per-minute risk becomes a `DEVICE_RISK_WARNING`.

Shared with the training script's evaluation, which replays the same `WarnState` over a held-out
episode's risks to choose and measure the operating point, so the figures on the model card are
those of the warnings the detector raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from detectors.early_warning.channels import MINUTE_MS


@dataclass(frozen=True, slots=True)
class Policy:
    """When a device's risk becomes a warning: `confirm_min` consecutive scores at or above
    `threshold` raise it (unless one was cleared less than `cooldown_min` ago), `clear_after_min`
    consecutive scores under `clear_below` clear it. One drift, one warning."""

    threshold: float
    clear_below: float
    confirm_min: int = 1
    clear_after_min: int = 10
    cooldown_min: int = 60


@dataclass(slots=True)
class WarnState:
    """One device's warning state under a `Policy`."""

    active_since: int | None = None  # window_start of the active warning
    high_since: int | None = None  # the first of the latest run of high scores
    high_scores: int = 0
    low_scores: int = 0
    cleared_at: int | None = None

    def step(self, ts: int, risk: float, policy: Policy) -> Literal["raise", "clear"] | None:
        if self.active_since is None:
            if risk < policy.threshold:
                self.high_since, self.high_scores = None, 0
                return None
            if self.high_since is None:
                self.high_since = ts
            self.high_scores += 1
            cooled = self.cleared_at is None or ts - self.cleared_at >= policy.cooldown_min * MINUTE_MS
            if self.high_scores >= policy.confirm_min and cooled:
                self.active_since, self.low_scores = self.high_since, 0
                self.high_since, self.high_scores = None, 0
                return "raise"
            return None
        if risk < policy.clear_below:
            self.low_scores += 1
            if self.low_scores >= policy.clear_after_min:
                self.active_since, self.cleared_at = None, ts
                return "clear"
        else:
            self.low_scores = 0
        return None
