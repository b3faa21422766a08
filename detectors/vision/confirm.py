"""From detections to findings: zones, temporal confirmation and cooldown, per camera.

- **Zones**: a detection counts for a code only if its anchor (the box centre) lies in a zone that
  applies to that code; a code no zone mentions counts anywhere in the frame (a rat is a rat
  wherever it runs, while a bare face may matter only over the food-preparation counter). An
  exclusion zone works the other way: inside it the code never counts (a flame on the stove).
- **Temporal confirmation**: a code is confirmed when it was seen in k of the camera's last n
  analysed frames, so one noisy frame raises nothing.
- **Cooldown**: after a camera raised a code, the same code from it stays quiet for a while.

Pure logic, no I/O: the vision service feeds it and turns confirmations into violations.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from detectors.vision.detections import Detections
from vigil.cameras import Zone


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points (N, 2) for one polygon (M, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]  # (N, 1) against the polygon's edges (1, M)
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_y = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside = crosses & (x < x_at_y)
    return np.asarray(inside.sum(axis=1) % 2 == 1)


def in_zones(
    detections: Detections, zones: tuple[Zone, ...], code: str, width: int, height: int
) -> np.ndarray:
    """Mask of the detections that count for `code` given the camera's zones: inside one of the
    code's zones (anywhere if it has none) and inside none of its exclusion zones."""
    applicable = [z for z in zones if z.applies_to(code)]
    if not applicable or len(detections) == 0:
        return np.ones(len(detections), dtype=bool)
    centres = np.column_stack(
        (
            (detections.xyxy[:, 0] + detections.xyxy[:, 2]) / (2 * width),
            (detections.xyxy[:, 1] + detections.xyxy[:, 3]) / (2 * height),
        )
    )
    included = [z for z in applicable if not z.exclude]
    mask = np.zeros(len(detections), dtype=bool) if included else np.ones(len(detections), dtype=bool)
    for zone in included:
        mask |= points_in_polygon(centres, np.asarray(zone.points, dtype=np.float64))
    for zone in applicable:
        if zone.exclude:
            mask &= ~points_in_polygon(centres, np.asarray(zone.points, dtype=np.float64))
    return mask


@dataclass(frozen=True, slots=True)
class Hit:
    """One frame's evidence for one code: the best score and the boxes that count."""

    ts: int
    score: float
    boxes: Detections
    frame_ref: object  # the caller's handle on the frame (the JPEG), kept for the best hit only


@dataclass(frozen=True, slots=True)
class Confirmed:
    code: str
    window_start: int  # ts of the first hit in the confirming window: part of the violation id
    hits: int
    best: Hit


class _CodeTrack:
    __slots__ = ("best", "history", "last_raised")

    def __init__(self, n: int) -> None:
        self.history: deque[Hit | None] = deque(maxlen=n)
        self.last_raised: int | None = None
        self.best: Hit | None = None


class CameraConfirmer:
    """k-of-n confirmation and cooldown for one camera, over the codes its model can emit."""

    def __init__(self, *, k: int, n: int, cooldown_ms: int) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"confirmation needs 1 <= k <= n, got k={k}, n={n}")
        if cooldown_ms < 0:
            raise ValueError("cooldown must not be negative")
        self._k, self._n, self._cooldown_ms = k, n, cooldown_ms
        self._tracks: dict[str, _CodeTrack] = {}

    def observe(self, ts: int, codes: tuple[str, ...], hits: dict[str, Hit]) -> list[Confirmed]:
        """Record one analysed frame: `hits` holds the codes seen in it; every code in `codes` not
        in `hits` counts as a frame without it."""
        confirmed = []
        for code in codes:
            track = self._tracks.get(code)
            if track is None:
                track = self._tracks[code] = _CodeTrack(self._n)
            hit = hits.get(code)
            track.history.append(hit)
            seen = [h for h in track.history if h is not None]
            if hit is None or len(seen) < self._k:
                continue
            if track.last_raised is not None and ts - track.last_raised < self._cooldown_ms:
                continue
            best = max(seen, key=lambda h: h.score)
            confirmed.append(Confirmed(code, seen[0].ts, len(seen), best))
            track.last_raised = ts
            track.history.clear()  # the next finding needs k fresh frames
        return confirmed
