"""Phone use (KITCHEN_PHONE_USE) measured on labelled real photos, through the service's own rule.

`phone-use-labels.csv` names photos of `../shared/datasets/` and frames of `../shared/video/`
labelled by eye: 1 where a person visibly holds a phone. Each image goes through the backend as
a frame does in the vision detector, then the manifest's score and `held_by` rule
(`detectors.vision.held`, the same function the service calls); an image counts as flagged when
some phone passes both. Figures are per image, single frame: the k-of-n confirmation of the
service is not in them (one photo is one frame).

The labelled set was drawn from the model's own candidates (a phone found at score >= 0.20) plus
random photos without one, so recall is measured against the phones this model can see at all: an
upper bound for phones it misses entirely.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.detections import Detections
from detectors.vision.held import HeldRule, apply_held_rules, held_rules
from detectors.vision.manifest import ModelManifest
from vigil.progress import Progress

CODE = "KITCHEN_PHONE_USE"
LABELS = Path(__file__).resolve().parent / "phone-use-labels.csv"
# Below every score the sweep shows, so one run of the model serves all of them.
EVAL_SCORE = 0.05
SWEEP = (0.25, 0.30, 0.35, 0.40, 0.50)


@dataclass(frozen=True, slots=True)
class Labelled:
    file: str  # relative to the shared root; "video/<clip>#<frame>" for a clip's frame
    label: bool
    how: str
    note: str


@dataclass(frozen=True, slots=True)
class PhoneUseReport:
    threshold: float  # the phone's min_score
    held: bool  # whether the held_by rule applied (False: any phone at the score)
    images: int
    positives: int
    tp: int
    fp: int
    fn: int
    source: str = "all"  # the images measured: all, or those of one set (datasets/masks, ...)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / self.positives if self.positives else float("nan")


def read_labels(path: Path = LABELS) -> list[Labelled]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [
        Labelled(row["file"], row["label"] == "1", row["how"], row["note"]) for row in csv.DictReader(lines)
    ]


def phone_rule(manifest: ModelManifest) -> tuple[int, HeldRule]:
    """The class index of the phone-use class and its held_by rule; ValueError if it has none."""
    for rule in held_rules(manifest):
        if manifest.violations[manifest.classes[rule[0]]].code == CODE:
            return rule[0], rule
    raise ValueError(f"model {manifest.name} has no held_by rule raising {CODE}")


def load_image(shared: Path, file: str) -> np.ndarray:
    """A labelled photo, or frame n of a clip for `video/<clip>#<n>`."""
    image: np.ndarray | None
    if "#" in file:
        clip, frame = file.rsplit("#", 1)
        capture = cv2.VideoCapture(str(shared / clip))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
            ok, read = capture.read()
            image = np.asarray(read) if ok else None
        finally:
            capture.release()
    else:
        image = cv2.imread(str(shared / file))
    if image is None:
        raise FileNotFoundError(f"cannot read {file} under {shared}")
    return np.asarray(image)


def phone_scores(detections: Detections, phone: int, rule: HeldRule | None) -> np.ndarray:
    """The scores of the phones that count: held by a confident holder when `rule` is given."""
    counts = detections.class_id == phone
    if rule is not None:
        apply_held_rules(detections, counts, (rule,))
    return np.asarray(detections.confidence[counts])


def detect_all(manifest: ModelManifest, shared: Path, labels: Sequence[Labelled]) -> Iterator[Detections]:
    """Each labelled image through the service's backend, candidates down to EVAL_SCORE."""
    low = dataclasses.replace(manifest, score_threshold=EVAL_SCORE)
    with (
        YoloOnnxBackend(low, intra_op_threads=None) as backend,
        Progress(len(labels), "phone use") as progress,
    ):
        for item in labels:
            (found,) = backend.detect([load_image(shared, item.file)])
            yield found
            progress.advance()


def evaluate(manifest: ModelManifest, shared: Path, labels: Sequence[Labelled]) -> list[PhoneUseReport]:
    """Per-image precision and recall at the operating score first, then the sweep, with the
    held_by rule and without it (any phone), so the rule's own effect shows."""
    phone, rule = phone_rule(manifest)
    operating = manifest.violations[manifest.classes[phone]].min_score
    best_held, best_any = [], []  # each image's best counted phone score, with and without the rule
    for found in detect_all(manifest, shared, labels):
        held, any_phone = phone_scores(found, phone, rule), phone_scores(found, phone, None)
        best_held.append(float(held.max()) if held.size else 0.0)
        best_any.append(float(any_phone.max()) if any_phone.size else 0.0)
    truth = np.array([item.label for item in labels], dtype=bool)
    everything = np.ones(len(labels), dtype=bool)
    reports = [
        _report(threshold, with_rule, np.asarray(best) >= threshold, truth, everything)
        for threshold in (operating, *(t for t in SWEEP if t != operating))
        for with_rule, best in ((True, best_held), (False, best_any))
    ]
    # The sets differ in what a false alarm is made of (cigarettes held at the mouth, masks): each
    # at the operating point.
    sources = np.array([source_of(item.file) for item in labels])
    flagged = np.asarray(best_held) >= operating
    reports += [_report(operating, True, flagged, truth, sources == s, s) for s in sorted(set(sources))]
    return reports


def source_of(file: str) -> str:
    """`datasets/masks` for a photo of that set, `video/vtest.avi` for a frame of that clip."""
    return file.split("#", 1)[0] if "#" in file else "/".join(file.split("/")[:2])


def _report(
    threshold: float,
    held: bool,
    flagged: np.ndarray,
    truth: np.ndarray,
    chosen: np.ndarray,
    source: str = "all",
) -> PhoneUseReport:
    flagged, truth = flagged[chosen], truth[chosen]
    return PhoneUseReport(
        threshold,
        held,
        int(chosen.sum()),
        int(truth.sum()),
        int((flagged & truth).sum()),
        int((flagged & ~truth).sum()),
        int((~flagged & truth).sum()),
        source,
    )


def format_reports(reports: Sequence[PhoneUseReport], operating: float) -> str:
    header = ("images", "phone min_score", "rule", "n", "TP", "FP", "FN", "precision", "recall")
    rows = ["{:<20} {:>15}  {:<16} {:>3} {:>3} {:>3} {:>3}  {:>9}  {:>6}".format(*header)]
    for r in reports:
        mark = "  <- operating point" if r.threshold == operating and r.held and r.source == "all" else ""
        rule = "held by a person" if r.held else "any phone"
        rows.append(
            f"{r.source:<20} {r.threshold:>15.2f}  {rule:<16} {r.images:>3} {r.tp:>3} {r.fp:>3} {r.fn:>3}  "
            f"{_percent(r.precision):>9}  {_percent(r.recall):>6}{mark}"
        )
    return "\n".join(rows)


def _percent(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1%}"
