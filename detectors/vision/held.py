"""Relations between two detected classes: an object held by a holder (a phone by a person).

A COCO detector finds a phone and a person as separate boxes; "a person is using a phone" is the
relation between them. The camera sees in two dimensions, so "held" is read as: most of the
object's box lies inside some confident holder's box (a phone in the hand, at the ear or in front
of the face lies within the person's box; a phone on a shelf across the room does not). A phone
on the counter in front of someone also passes: the relation cannot tell the two apart, and the
k-of-n confirmation and the zones are what keep that rarer case from raising on its own.

Pure and vectorised: an (N, M) matrix of the objects against the holders, no Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.vision.detections import Detections
from detectors.vision.manifest import HeldBy, ModelManifest


def inside_fraction(objects: np.ndarray, holders: np.ndarray) -> np.ndarray:
    """(N, M): the share of each object box's area (N, 4 xyxy) that lies in each holder box
    (M, 4 xyxy). A degenerate object box (no area) is inside nothing."""
    objects = np.asarray(objects, dtype=np.float32).reshape(-1, 4)
    holders = np.asarray(holders, dtype=np.float32).reshape(-1, 4)
    o, h = objects[:, None, :], holders[None, :, :]
    width = np.clip(np.minimum(o[..., 2], h[..., 2]) - np.maximum(o[..., 0], h[..., 0]), 0, None)
    height = np.clip(np.minimum(o[..., 3], h[..., 3]) - np.maximum(o[..., 1], h[..., 1]), 0, None)
    area = (objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (width * height) / area[:, None]
    return np.where(area[:, None] > 0, share, 0.0).astype(np.float32)


def held_by(objects: np.ndarray, holders: np.ndarray, min_inside: float) -> np.ndarray:
    """(N, M) bool: object i is held by holder j (at least `min_inside` of its box in j's box)."""
    if len(objects) == 0 or len(holders) == 0:
        return np.zeros((len(objects), len(holders)), dtype=bool)
    return np.asarray(inside_fraction(objects, holders) >= min_inside)


def held(objects: np.ndarray, holders: np.ndarray, min_inside: float) -> np.ndarray:
    """(N,) bool: which objects some holder holds."""
    return np.asarray(held_by(objects, holders, min_inside).any(axis=1))


HeldRule = tuple[int, int, HeldBy]  # (object class index, holder class index, the manifest's rule)


def held_rules(manifest: ModelManifest) -> tuple[HeldRule, ...]:
    """The manifest's `held_by` rules, by class index."""
    classes = manifest.classes
    return tuple(
        (classes.index(name), classes.index(rule.held_by.holder), rule.held_by)
        for name, rule in manifest.violations.items()
        if rule.held_by is not None
    )


def apply_held_rules(detections: Detections, counts: np.ndarray, rules: Sequence[HeldRule]) -> np.ndarray:
    """Drop the objects no holder holds from `counts` (N,) bool, in place, and return (N, N) bool:
    row i marks the boxes that hold detection i (for the evidence, which shows both)."""
    n = len(detections)
    holders = np.zeros((n, n), dtype=bool)
    cls, score = detections.class_id, detections.confidence
    for item, holder, rule in rules:
        objects = np.flatnonzero(counts & (cls == item))
        if not objects.size:
            continue
        candidates = np.flatnonzero((cls == holder) & (score >= rule.min_score))
        pairs = held_by(detections.xyxy[objects], detections.xyxy[candidates], rule.min_inside)
        holders[np.ix_(objects, candidates)] = pairs
        counts[objects] = pairs.any(axis=1)
    return holders
