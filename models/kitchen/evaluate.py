"""mAP and precision/recall of an ONNX detector on the held-out split, through the service's path.

Images go through `YoloOnnxBackend.prepare/infer/decode` exactly as frames do in the vision
detector (letterbox, onnxruntime, the v8 decoder, class-wise NMS), only with a candidate threshold
of 0.001 so the precision/recall curve is complete; precision and recall at the operating point
use the manifest's per-class `min_score` (or its `score_threshold` for classes that raise nothing).

Partial labels: the cigarette photos show faces that were never labelled, so a mask-class
detection on them can be neither a true nor a false positive; detections of classes an image's
source does not label are ignored on that image (and the same for cigarettes on the mask photos).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.manifest import ModelManifest
from models.kitchen.data import CLASSES, SOURCES, Sample
from vigil.progress import Progress

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
EVAL_SCORE = 0.001  # COCO-style: keep nearly every candidate so the PR curve reaches low scores
EVAL_MAX_DETECTIONS = 300


@dataclass(frozen=True, slots=True)
class ClassReport:
    name: str
    images: int  # held-out images whose source labels this class
    boxes: int  # labelled boxes of the class in them
    ap50: float
    ap50_95: float
    threshold: float  # the operating score
    precision: float  # at the operating score, IoU 0.5
    recall: float
    f1_score: float  # the score that maximises F1 at IoU 0.5 on these images (a suggested operating point)
    f1: float


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9))


def match_detections(xyxy: np.ndarray, conf: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Greedy COCO matching of one class in one image: (n_det, n_thresholds) true-positive flags."""
    tp = np.zeros((len(xyxy), len(IOU_THRESHOLDS)), dtype=bool)
    if len(xyxy) == 0 or len(gt) == 0:
        return tp
    order = np.argsort(-conf, kind="stable")
    ious = _iou(xyxy[order], gt)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt), dtype=bool)
        for row, det in enumerate(order):
            candidates = np.where(taken, -1.0, ious[row])
            best = int(candidates.argmax())
            if candidates[best] >= threshold:
                taken[best] = True
                tp[det, t] = True
    return tp


def average_precision(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> np.ndarray:
    """COCO 101-point interpolated AP per IoU threshold; (n_det, T) flags -> (T,)."""
    if n_gt == 0:
        return np.full(tp.shape[1], np.nan)
    if len(conf) == 0:
        return np.zeros(tp.shape[1])
    order = np.argsort(-conf, kind="stable")
    tps = np.cumsum(tp[order], axis=0)
    fps = np.cumsum(~tp[order], axis=0)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, 1e-9)
    points = np.linspace(0, 1, 101)
    out = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        envelope = np.maximum.accumulate(precision[::-1, t])[::-1]
        idx = np.searchsorted(recall[:, t], points, side="left")
        out[t] = np.mean(np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0))
    return out


def evaluate(
    manifest: ModelManifest, samples: Sequence[Sample], *, batch: int = 8, show: bool = True
) -> list[ClassReport]:
    """Run the model on `samples` and score it per class."""
    nc = len(manifest.classes)
    probe = dataclasses.replace(manifest, score_threshold=EVAL_SCORE, max_detections=EVAL_MAX_DETECTIONS)
    backend = YoloOnnxBackend(probe, max_batch=batch)
    operating = np.array(
        [
            manifest.violations[c].min_score if c in manifest.violations else manifest.score_threshold
            for c in manifest.classes
        ]
    )
    # Datasets label by the training classes' ids; a model may have fewer classes (one trained before
    # the fire set joined) or another order, so labels are matched to the model's classes by name.
    known = manifest.classes
    model_class = {i: known.index(name) for i, name in enumerate(CLASSES) if name in known}
    tps: list[list[np.ndarray]] = [[] for _ in range(nc)]
    confs: list[list[np.ndarray]] = [[] for _ in range(nc)]
    n_gt = np.zeros(nc, dtype=int)
    n_images = np.zeros(nc, dtype=int)
    op_tp = np.zeros(nc, dtype=int)
    op_det = np.zeros(nc, dtype=int)
    progress = Progress(len(samples), "evaluating", unit="images") if show else None
    try:
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            images = []
            for sample in chunk:
                image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{sample.image}: not a readable image")
                images.append(image)
            prepared = backend.prepare(images)
            results = backend.decode(backend.infer(prepared), prepared)
            for sample, image, dets in zip(chunk, images, results, strict=True):
                h, w = image.shape[:2]
                gt = sample.boxes.copy()
                gt[:, [1, 3]] *= w
                gt[:, [2, 4]] *= h
                for label in SOURCES[sample.source].class_map:
                    c = model_class.get(label)
                    if c is None:
                        continue  # a class the dataset labels but this model does not have
                    mine = dets.class_id == c
                    gt_c = gt[gt[:, 0] == label, 1:]
                    tp = match_detections(dets.xyxy[mine], dets.confidence[mine], gt_c)
                    tps[c].append(tp)
                    confs[c].append(dets.confidence[mine])
                    n_gt[c] += len(gt_c)
                    n_images[c] += 1
                    at_op = dets.confidence[mine] >= operating[c]
                    op_det[c] += int(at_op.sum())
                    op_tp[c] += int(tp[at_op, 0].sum())
            if progress:
                progress.advance(len(chunk))
    finally:
        backend.close()
        if progress:
            progress.__exit__(None, None, None)
    reports = []
    for c, name in enumerate(manifest.classes):
        tp = np.concatenate(tps[c]) if tps[c] else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        conf = np.concatenate(confs[c]) if confs[c] else np.zeros(0)
        ap = average_precision(tp, conf, int(n_gt[c]))
        reports.append(
            ClassReport(
                name=name,
                images=int(n_images[c]),
                boxes=int(n_gt[c]),
                ap50=float(ap[0]),
                ap50_95=float(np.mean(ap)),
                threshold=float(operating[c]),
                precision=float(op_tp[c] / op_det[c]) if op_det[c] else float("nan"),
                recall=float(op_tp[c] / n_gt[c]) if n_gt[c] else float("nan"),
                **_best_f1(tp[:, 0], conf, int(n_gt[c])),
            )
        )
    return reports


def _best_f1(tp: np.ndarray, conf: np.ndarray, n_gt: int) -> dict[str, float]:
    """The score threshold with the best F1 at IoU 0.5, and that F1."""
    if n_gt == 0 or len(conf) == 0:
        return {"f1_score": float("nan"), "f1": 0.0}
    order = np.argsort(-conf, kind="stable")
    tps = np.cumsum(tp[order])
    precision = tps / np.arange(1, len(order) + 1)
    recall = tps / n_gt
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    best = int(np.argmax(f1))
    return {"f1_score": float(conf[order][best]), "f1": float(f1[best])}


def format_reports(reports: Sequence[ClassReport]) -> str:
    lines = [
        f"{'class':<24}{'images':>7}{'boxes':>7}{'mAP@.5':>9}{'mAP@.5:.95':>12}{'score':>7}{'P':>7}{'R':>7}"
        f"{'best-F1 score':>15}{'F1':>6}"
    ]
    for r in reports:
        lines.append(
            f"{r.name:<24}{r.images:>7}{r.boxes:>7}{r.ap50:>9.3f}{r.ap50_95:>12.3f}"
            f"{r.threshold:>7.2f}{r.precision:>7.3f}{r.recall:>7.3f}{r.f1_score:>15.2f}{r.f1:>6.2f}"
        )
    valid = [r for r in reports if r.boxes]
    if valid:
        lines.append(
            f"{'all (mean over classes)':<24}{'':>7}{sum(r.boxes for r in valid):>7}"
            f"{np.mean([r.ap50 for r in valid]):>9.3f}{np.mean([r.ap50_95 for r in valid]):>12.3f}"
        )
    return "\n".join(lines)


NO_MASK_CODE = "KITCHEN_NO_MASK"


@dataclass(frozen=True, slots=True)
class FalseAlarms:
    images: int  # held-out photos whose faces are all labelled with_mask
    alarms: int  # of them, photos with a no-mask detection at its operating score

    @property
    def rate(self) -> float:
        return self.alarms / self.images if self.images else float("nan")


def masked_only(samples: Sequence[Sample]) -> list[Sample]:
    """Photos of the mask set that show faces, every one of them correctly masked."""
    with_mask = SOURCES[0].class_map[1]
    return [s for s in samples if s.source == 0 and len(s.boxes) and (s.boxes[:, 0] == with_mask).all()]


def no_mask_false_alarms(
    manifest: ModelManifest, samples: Sequence[Sample], *, batch: int = 8
) -> FalseAlarms:
    """Single-frame no-mask alarms on photos showing only correctly masked faces, with the
    manifest's own thresholds, as the vision detector sees one frame (before its k-of-n confirmation)."""
    chosen = masked_only(samples)
    codes = {NO_MASK_CODE}
    return FalseAlarms(len(chosen), alarmed_photos(manifest, chosen, codes, batch=batch))


def alarmed_photos(
    manifest: ModelManifest, samples: Sequence[Sample], codes: set[str] | None = None, *, batch: int = 8
) -> int:
    """Photos with a box of a class raising one of `codes` (every violation class when None) at
    its operating score, one frame each, as the vision detector sees it before confirmation."""
    classes = {
        manifest.classes.index(name): v.min_score
        for name, v in manifest.violations.items()
        if codes is None or v.code in codes
    }
    backend = YoloOnnxBackend(manifest, max_batch=batch)
    alarms = 0
    try:
        for start in range(0, len(samples), batch):
            images = []
            for sample in samples[start : start + batch]:
                image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"{sample.image}: not a readable image")
                images.append(image)
            prepared = backend.prepare(images)
            for dets in backend.decode(backend.infer(prepared), prepared):
                alarms += any(
                    dets.confidence[dets.class_id == c].max(initial=0.0) >= m for c, m in classes.items()
                )
    finally:
        backend.close()
    return alarms
