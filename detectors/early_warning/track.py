"""One device's recent past, kept bounded, and its model rows.

`DeviceTrack` keeps, per device, one reading per minute of each watched metric (the latest of the
minute) for the last 30 minutes, in bounded ring buffers, and the door events of a cold room;
`DeviceTrack.features` turns them into the model's rows (`FEATURES`). The training script builds
its rows with this same class, from the same simulated messages, so training and runtime features
cannot drift apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from detectors.early_warning.channels import CHANNELS, MIN_POINTS, MINUTE_MS, WINDOW_MIN
from detectors.early_warning.features import DOOR_CAP_MIN, window_features


class DeviceTrack:
    """One device's recent past: per watched metric a ring buffer of (minute, latest value) for the
    last `WINDOW_MIN` minutes, and the state of a cold room's door. Bounded whatever comes in."""

    __slots__ = ("_door_opens", "_door_since", "_last_door", "channels", "indices", "last_ts", "points")

    def __init__(self, profile: str) -> None:
        self.indices = tuple(i for i, c in enumerate(CHANNELS) if c.profile == profile)
        self.channels = tuple(CHANNELS[i] for i in self.indices)
        self.points: dict[str, deque[tuple[int, float]]] = {
            c.metric: deque(maxlen=WINDOW_MIN) for c in self.channels
        }
        self.last_ts: int | None = None
        self._door_since: int | None = None
        self._last_door: int | None = None
        self._door_opens: deque[int] = deque(maxlen=WINDOW_MIN)

    def add(self, ts: int, metrics: Mapping[str, float]) -> bool:
        """Keep a reading; True when it is the first of a new minute (the moment to score).
        A reading older than the newest is late and ignored; impossible values are left out."""
        last = self.last_ts
        minute = ts // MINUTE_MS
        if last is None:
            new_minute = True
        elif ts < last:
            return False
        else:
            new_minute = minute != last // MINUTE_MS
        self.last_ts = ts
        points = self.points
        for c in self.channels:  # every reading of every watched device: kept lean
            value = metrics.get(c.metric)
            kind = type(value)
            if kind is not float and kind is not int:  # absent, or not a number (a bool is neither)
                continue
            assert value is not None
            low, high = c.valid
            if not (low <= value <= high):  # SENSOR_OUT_OF_RANGE's business
                continue
            buf = points[c.metric]
            if buf and buf[-1][0] == minute:
                buf[-1] = (minute, float(value))
            else:
                buf.append((minute, float(value)))
        return new_minute

    def event(self, ts: int, name: str) -> None:
        if name == "door_open":
            if self._door_since is None:
                self._door_since = ts
                self._door_opens.append(ts)
            self._last_door = ts
        elif name == "door_closed":
            self._door_since = None
            self._last_door = ts

    def features(
        self, ts: int, attributes: Mapping[str, Any], defaults: Mapping[str, Mapping[str, float]]
    ) -> tuple[list[int], np.ndarray] | None:
        """The model rows of this device at `ts` (its latest reading): the indices into `CHANNELS`
        of the metrics with enough history, and their rows (k, len(FEATURES)); None if none."""
        now = ts // MINUTE_MS
        door_open = (ts - self._door_since) / MINUTE_MS if self._door_since is not None else 0.0
        since_door = (ts - self._last_door) / MINUTE_MS if self._last_door is not None else DOOR_CAP_MIN
        opens = sum(1 for t in self._door_opens if ts - t < WINDOW_MIN * MINUTE_MS)
        used: list[int] = []
        rows: list[np.ndarray] = []
        for index, c in zip(self.indices, self.channels, strict=True):
            buf = self.points[c.metric]
            if not buf or buf[-1][0] != now:
                continue  # no reading of this metric in the current minute
            window = [(m, v) for m, v in buf if m > now - WINDOW_MIN]
            if len(window) < MIN_POINTS:
                continue
            own = defaults.get(c.profile, {})
            limit = c.limit(attributes, own)
            span = c.span(limit)
            sign = 1.0 if c.direction == "above" else -1.0
            minutes = np.array([m - now for m, _ in window], dtype=np.float64)
            margins = np.array([sign * (limit - v) / span for _, v in window], dtype=np.float64)
            rows.append(
                window_features(
                    minutes,
                    margins,
                    channel=index,
                    hold_min=c.hold_s(attributes, own) / 60,
                    door_open_min=max(0.0, door_open),
                    since_door_min=max(0.0, since_door),
                    door_opens=opens,
                )
            )
            used.append(index)
        if not rows:
            return None
        return used, np.stack(rows)
