"""The shared photo sets as one detection dataset: discovery, a seeded grouped split, augmentation.

Three sources with different label sets are trained together into one model, so a kitchen frame
costs one inference, not two. Their labels are *partial*: the cigarette photos show faces that
nobody marked with or without a mask, and the mask photos have cigarettes nobody marked. Each
sample therefore carries the set of classes its source labels; the loss only scores those
classes on it (`labelled` below), and a mosaic only joins photos of one source, so an unlabelled
face is never taught as background for `without_mask`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.kitchen.groups import grouped_held_out, never_trained_by_file_rule

CLASSES = ("without_mask", "with_mask", "mask_worn_incorrectly", "cigarette", "fire", "smoke")


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # folder under the datasets root
    class_map: tuple[int, ...]  # the source's class id -> the model's class id


SOURCES = (Source("masks", (0, 1, 2)), Source("cigarettes", (3,)), Source("fire", (4, 5)))
PAD_VALUE = 114  # the service's letterbox grey (detectors.vision.backends.yolo)


@dataclass(frozen=True, slots=True)
class Sample:
    image: Path
    boxes: np.ndarray  # (n, 5) float32: model class, x1, y1, x2, y2 normalised to 0..1
    source: int  # index into SOURCES


def read_labels(path: Path, source: Source) -> np.ndarray:
    """YOLO label lines -> (n, 5) class, x1, y1, x2, y2; a malformed line is an error, not a skip."""
    rows = []
    if path.is_file():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise ValueError(f"{path}:{number}: expected 'class cx cy w h', got {line!r}")
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:])
            if not 0 <= cls < len(source.class_map):
                raise ValueError(f"{path}:{number}: class {cls} is not one of {source.name}'s")
            rows.append((source.class_map[cls], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    boxes = np.array(rows, dtype=np.float32).reshape(-1, 5)
    boxes[:, 1:] = boxes[:, 1:].clip(0.0, 1.0)
    return boxes


KITCHEN_SETS = ("masks", "cigarettes")  # the kitchen model's sets; the fire set trains the fire model


def classes_for(sets: Sequence[str]) -> tuple[str, ...]:
    """A model's classes: those the chosen sets label, in CLASSES order."""
    unknown = set(sets) - {s.name for s in SOURCES}
    if unknown or not sets:
        raise ValueError(f"sets must be some of {', '.join(s.name for s in SOURCES)}, not {sorted(unknown)}")
    return tuple(CLASSES[c] for s in SOURCES if s.name in sets for c in s.class_map)


def sets_for(classes: Sequence[str]) -> tuple[str, ...]:
    """The sets that label any of a model's classes: what it is trained, calibrated and scored on."""
    return tuple(s.name for s in SOURCES if any(CLASSES[c] in classes for c in s.class_map))


def discover(root: Path, *, partial: bool = False, sets: Sequence[str] | None = None) -> list[Sample]:
    """Every labelled photo of the chosen sets (all by default) under `root`. Training needs each
    of its sets (`partial` False: a missing one is an error); evaluation scores whichever are there."""
    samples = []
    for index, source in enumerate(SOURCES):
        if sets is not None and source.name not in sets:
            continue
        images = sorted((root / source.name / "images").glob("*.jpg"))
        if not images:
            if partial:
                continue
            raise FileNotFoundError(f"no images under {root / source.name / 'images'}")
        for image in images:
            labels = read_labels(root / source.name / "labels" / f"{image.stem}.txt", source)
            samples.append(Sample(image, labels, index))
    if not samples:
        raise FileNotFoundError(f"none of {', '.join(s.name for s in SOURCES)} under {root}")
    return samples


VAL_FRACTION = 0.15  # ~290 held-out photos: enough for a stable mAP on the two small classes


def split(
    samples: Sequence[Sample], seed: int, val_fraction: float = VAL_FRACTION
) -> tuple[list[Sample], list[Sample]]:
    """A seeded split by source photo, source video or run of frames (models.kitchen.groups), per
    set: every augmented copy of a photo lands on one side. Independent of the samples' order,
    the same on any machine, and the same for training and `vigil models eval`."""
    held: set[Path] = set()
    for index, source in enumerate(SOURCES):
        paths = {s.image.name: s.image for s in samples if s.source == index}
        held.update(paths[n] for n in grouped_held_out(source.name, sorted(paths), seed, val_fraction))
    train = [s for s in samples if s.image not in held]
    return train, [s for s in samples if s.image in held]


# The split a model was trained under. "file" is the per-file hash used before issue 23: the
# shipped kitchen model was trained under it, so some grouped held-out photos were in its training.
TRAINED_SPLITS = ("file", "grouped")


def held_out_for(
    samples: Sequence[Sample], seed: int, trained_split: str, val_fraction: float = VAL_FRACTION
) -> list[Sample]:
    """The grouped held-out photos a model trained under `trained_split` has never seen: for
    "file", only those whose whole source group the old per-file rule also held out (neither the
    photo nor any augmented copy of it was trained on)."""
    _, held = split(samples, seed, val_fraction)
    if trained_split == "grouped":
        return held
    if trained_split != "file":
        raise ValueError(f"trained_split must be one of {TRAINED_SPLITS}, not {trained_split!r}")
    unseen: set[Path] = set()
    for index, source in enumerate(SOURCES):
        paths = {s.image.name: s.image for s in samples if s.source == index}
        names = never_trained_by_file_rule(source.name, sorted(paths), seed, val_fraction)
        unseen.update(paths[n] for n in names)
    return [s for s in held if s.image in unseen]


def labelled_mask(source: int) -> np.ndarray:
    mask = np.zeros(len(CLASSES), dtype=np.float32)
    mask[list(SOURCES[source].class_map)] = 1.0
    return mask


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The service's letterbox (grey, centred), so training sees what inference sees."""
    h, w = image.shape[:2]
    r = min(size / w, size / h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, r, (left, top)


class TrainSet:
    """Images decoded once and kept in memory at the training size (the whole set is ~0.5 GB at
    416); every `item` is a fresh augmentation drawn from the caller's RNG, so an epoch is
    reproducible from its seed alone, which is what makes a resumed run identical."""

    def __init__(self, samples: Sequence[Sample], size: int, negatives: frozenset[int] = frozenset()) -> None:
        """`negatives`: sources whose photos show none of the model's classes (their boxes already
        dropped): every class is scored on them, as absent, so they teach what is not a fire."""
        self.samples = list(samples)
        self.size = size
        self.negatives = negatives
        self.images: list[np.ndarray] = []
        self.by_source: dict[int, list[int]] = {}
        for i, sample in enumerate(self.samples):
            image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{sample.image}: not a readable image")
            h, w = image.shape[:2]
            r = size / max(h, w)
            if r != 1:
                image = cv2.resize(
                    image, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA
                )
            self.images.append(image)
            self.by_source.setdefault(sample.source, []).append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def item(self, index: int, rng: random.Random, mosaic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H, W, 3) BGR uint8, (n, 5) class + x1y1x2y2 pixels, (nc,) labelled-class mask."""
        source = self.samples[index].source
        if mosaic:
            peers = self.by_source[source]
            image, boxes = self._mosaic([index, *(rng.choice(peers) for _ in range(3))], rng)
        else:
            image, boxes = self._placed(index, rng)
        image, boxes = _hsv_flip(image, boxes, rng)
        if source in self.negatives:
            return image, boxes, np.ones(len(CLASSES), dtype=np.float32)
        return image, boxes, labelled_mask(source)

    def _pixel_boxes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.images[index]
        h, w = image.shape[:2]
        boxes = self.samples[index].boxes.copy()
        boxes[:, [1, 3]] *= w
        boxes[:, [2, 4]] *= h
        return image, boxes

    def _mosaic(self, indices: list[int], rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        s = self.size
        canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, dtype=np.uint8)
        cx, cy = int(rng.uniform(0.5 * s, 1.5 * s)), int(rng.uniform(0.5 * s, 1.5 * s))
        all_boxes = []
        for k, index in enumerate(indices):
            image, boxes = self._pixel_boxes(index)
            h, w = image.shape[:2]
            # Each tile is anchored at the mosaic centre, in its own quadrant (YOLOv5's layout).
            if k == 0:
                x1, y1, x2, y2 = max(cx - w, 0), max(cy - h, 0), cx, cy
                sx1, sy1 = w - (x2 - x1), h - (y2 - y1)
            elif k == 1:
                x1, y1, x2, y2 = cx, max(cy - h, 0), min(cx + w, 2 * s), cy
                sx1, sy1 = 0, h - (y2 - y1)
            elif k == 2:
                x1, y1, x2, y2 = max(cx - w, 0), cy, cx, min(2 * s, cy + h)
                sx1, sy1 = w - (x2 - x1), 0
            else:
                x1, y1, x2, y2 = cx, cy, min(cx + w, 2 * s), min(2 * s, cy + h)
                sx1, sy1 = 0, 0
            canvas[y1:y2, x1:x2] = image[sy1 : sy1 + (y2 - y1), sx1 : sx1 + (x2 - x1)]
            boxes[:, [1, 3]] += x1 - sx1
            boxes[:, [2, 4]] += y1 - sy1
            all_boxes.append(boxes)
        boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 5), np.float32)
        return _affine(canvas, boxes, rng, out=s, border=s // 2)

    def _placed(self, index: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        image, boxes = self._pixel_boxes(index)
        canvas, _, (left, top) = letterbox(image, self.size)
        boxes = boxes.copy()  # images are stored at the training size already: only the padding moves them
        boxes[:, [1, 3]] += left
        boxes[:, [2, 4]] += top
        return _affine(canvas, boxes, rng, out=self.size, border=0)


# Augmentation strengths. From scratch on ~2,000 photos the network memorises quickly, so the
# geometry varies strongly (scale 0.5..1.5 is YOLOv8's default) while colour stays mild: a mask's
# colour is part of what makes it a mask.
SCALE = (0.5, 1.5)
TRANSLATE = 0.1
HSV = (0.015, 0.5, 0.4)  # hue, saturation, value gains (YOLOv8 defaults)
MIN_SIDE = 2.0  # pixels: a box cut smaller than this by the crop is not an object any more
MIN_KEPT = 0.25  # fraction of its area a box must keep after the crop to stay labelled


def _affine(
    image: np.ndarray, boxes: np.ndarray, rng: random.Random, *, out: int, border: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale and translation around the centre, output `out` x `out`."""
    h, w = image.shape[:2]
    scale = rng.uniform(*SCALE)
    tx = rng.uniform(0.5 - TRANSLATE, 0.5 + TRANSLATE) * out
    ty = rng.uniform(0.5 - TRANSLATE, 0.5 + TRANSLATE) * out
    m = np.array([[scale, 0, tx - scale * w / 2], [0, scale, ty - scale * h / 2]], dtype=np.float32)
    warped = cv2.warpAffine(image, m, (out, out), borderValue=(PAD_VALUE,) * 3)
    if len(boxes) == 0:
        return warped, boxes
    xy = boxes[:, 1:] * scale
    xy[:, [0, 2]] += m[0, 2]
    xy[:, [1, 3]] += m[1, 2]
    area_before = (xy[:, 2] - xy[:, 0]) * (xy[:, 3] - xy[:, 1])
    clipped = xy.clip(0, out)
    bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (bw > MIN_SIDE) & (bh > MIN_SIDE) & (bw * bh > MIN_KEPT * np.maximum(area_before, 1e-6))
    result = np.concatenate((boxes[keep, :1], clipped[keep]), axis=1).astype(np.float32)
    return warped, result


def _hsv_flip(image: np.ndarray, boxes: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    gains = [rng.uniform(-g, g) + 1 for g in HSV]
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    image = cv2.cvtColor(
        cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v))), cv2.COLOR_HSV2BGR
    )
    if rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
        w = image.shape[1]
        boxes = boxes.copy()
        boxes[:, [1, 3]] = w - boxes[:, [3, 1]]
    return image, boxes
