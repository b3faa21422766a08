"""YOLO-family detectors exported to ONNX, run with onnxruntime.

Covers the three output layouts in the wild:

- "v8" (YOLOv8, YOLOv11 and most recent exports): (B, 4+nc, N), rows cx, cy, w, h in input
  pixels then the class scores, already sigmoid'ed, no objectness;
- "v5" (YOLOv5, v7): (B, N, 5+nc), cx, cy, w, h, objectness, class scores; the candidate's
  score is objectness x class score.
- "yolox" (Megvii YOLOX exported without `--decode_in_inference`): (B, N, 5+nc) like v5, but
  x, y, w, h are relative to one anchor point per cell of the stride 8, 16 and 32 grids:
  xy = (out_xy + cell) * stride, wh = exp(out_wh) * stride.

Pre-processing is the letterbox (aspect kept, centred, grey 114 padding) with the manifest's
channel order and pixel range: RGB 0..1 for Ultralytics exports, BGR 0..255 for YOLOX, so a model
exported with default settings sees what it was trained on. Post-processing is
vectorised per batch; the only per-image step is the class-wise NMS call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

from detectors.vision.backends.base import DetectorBackend, PreparedBatch, register_backend
from detectors.vision.detections import Detections
from detectors.vision.manifest import YOLOX_STRIDES, Layout, ModelManifest, yolox_anchor_points
from vigil.errors import ConfigurationError

log = logging.getLogger(__name__)

PAD_VALUE = 114  # the Ultralytics letterbox grey: what the models were trained with
# Candidates handed to NMS at most, best first (the Ultralytics `max_nms`): bounds the NMS cost
# when a bad frame or an untrained model lights up every anchor.
MAX_NMS_CANDIDATES = 30_000
# exp() of a raw YOLOX size above this is a box thousands of strides wide: garbage from an untrained
# or mismatched head, clipped so it neither overflows nor warns.
_MAX_LOG_SIZE = 10.0
# Double buffering: one batch can be prepared while the previous one is still being inferred.
_BUFFERS = 2


def resolve_layout(shape: tuple[int, ...], num_classes: int, layout: Layout) -> Literal["v8", "v5", "yolox"]:
    """The layout of a raw output (B, A, C); "auto" prefers v8 when both would fit (a YOLOX
    output looks like v5 and is never guessed: its boxes need the grids)."""
    if len(shape) != 3:
        raise ValueError(f"YOLO output must be 3-D, got shape {shape}")
    v8 = shape[1] == 4 + num_classes
    v5 = shape[2] == 5 + num_classes
    if layout == "auto":
        if v8 or v5:
            return "v8" if v8 else "v5"
    elif (layout == "v8" and v8) or (layout in ("v5", "yolox") and v5):
        return layout
    raise ValueError(
        f"output shape {shape} does not fit layout {layout!r} with {num_classes} classes "
        f"(v8 wants (B, {4 + num_classes}, N), v5 and yolox want (B, N, {5 + num_classes}))"
    )


@lru_cache(maxsize=8)
def yolox_grids(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Each YOLOX anchor point's cell (N, 2: column, row) and stride (N, 1), in the head's order:
    stride 8 first, row-major within a grid. Cached: a detector uses one input size."""
    cells, strides = [], []
    for stride in YOLOX_STRIDES:
        cols, rows = np.meshgrid(np.arange(width // stride), np.arange(height // stride))
        cells.append(np.stack((cols, rows), axis=-1).reshape(-1, 2))
        strides.append(np.full((cols.size, 1), stride))
    grid, stride_col = np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)
    grid.setflags(write=False)
    stride_col.setflags(write=False)
    return grid, stride_col


def decode_yolox_boxes(raw: np.ndarray, idx: np.ndarray, width: int, height: int) -> np.ndarray:
    """Raw YOLOX x, y, w, h (K, 4) of anchor points `idx` -> cx, cy, w, h in input pixels."""
    grid, stride = yolox_grids(width, height)
    xy = (raw[:, 0:2] + grid[idx]) * stride[idx]
    wh = np.exp(np.minimum(raw[:, 2:4], _MAX_LOG_SIZE)) * stride[idx]
    return np.concatenate((xy, wh), axis=1)


def decode_yolo(
    output: np.ndarray,
    prepared: PreparedBatch,
    *,
    layout: Layout,
    num_classes: int,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    input_size: tuple[int, int] | None = None,
) -> list[Detections]:
    """Raw YOLO output -> one `Detections` per real image, in original-image pixels.
    `input_size` (width, height) is required by the "yolox" layout, whose grids depend on it."""
    pred = np.asarray(output, dtype=np.float32)
    kind = resolve_layout(pred.shape, num_classes, layout)
    if kind == "yolox":
        if input_size is None:
            raise ValueError("the yolox layout needs the model's input_size to build its grids")
        points = yolox_anchor_points(*input_size)
        if pred.shape[1] != points:
            raise ValueError(
                f"output shape {pred.shape} does not fit a YOLOX head on a {input_size[0]}x"
                f"{input_size[1]} input: expected {points} anchor points (strides {YOLOX_STRIDES})"
            )
    pred = pred[: prepared.count]
    if kind == "v8":
        pred = pred.transpose(0, 2, 1)  # (n, N, 4+nc): one row per candidate, like v5
        scores = pred[..., 4 : 4 + num_classes]
    else:
        scores = pred[..., 5 : 5 + num_classes] * pred[..., 4:5]
    class_id = scores.argmax(axis=-1)  # best class per candidate
    confidence = np.take_along_axis(scores, class_id[..., None], axis=-1)[..., 0]
    passed = confidence >= score_threshold

    results = []
    for i in range(prepared.count):
        idx = np.flatnonzero(passed[i])
        if idx.size == 0:
            results.append(Detections.empty())
            continue
        if idx.size > MAX_NMS_CANDIDATES:
            idx = idx[np.argpartition(-confidence[i, idx], MAX_NMS_CANDIDATES)[:MAX_NMS_CANDIDATES]]
        conf, cls = confidence[i, idx], class_id[i, idx]
        cxcywh = pred[i, idx, :4]
        if kind == "yolox" and input_size is not None:
            # Only the candidates that passed: a few dozen rows, not the whole head.
            cxcywh = decode_yolox_boxes(cxcywh, idx, *input_size)
        wh = np.maximum(cxcywh[:, 2:4], 0.0)  # garbage sizes from an untrained head: empty boxes
        xywh = np.concatenate((cxcywh[:, 0:2] - wh / 2, wh), axis=1)
        # OpenCV's class-wise NMS (boxes of different classes never suppress each other). Its score
        # threshold is strict, and ours was applied above, so 0 keeps every candidate. The binding takes
        # (N, 4) float arrays, though its stubs only name sequences.
        kept = np.asarray(
            cv2.dnn.NMSBoxesBatched(xywh, conf, cls.astype(np.int32), 0.0, iou_threshold),  # type: ignore[arg-type]
            dtype=np.int64,
        ).reshape(-1)
        kept = kept[np.argsort(-conf[kept], kind="stable")][:max_detections]
        xyxy = np.concatenate((xywh[kept, 0:2], xywh[kept, 0:2] + xywh[kept, 2:4]), axis=1)
        results.append(Detections(_unletterbox(xyxy, prepared, i), conf[kept], cls[kept]))
    return results


def _unletterbox(xyxy: np.ndarray, prepared: PreparedBatch, i: int) -> np.ndarray:
    """Input-pixel boxes of image i -> its original pixels, clipped to the image."""
    pad = np.tile(prepared.pad[i], 2)  # x, y, x, y
    scale = np.tile(prepared.scale[i], 2)
    size = np.tile(prepared.sizes[i].astype(np.float32), 2)
    out = (xyxy - pad) / scale
    return np.asarray(np.clip(out, 0.0, size), dtype=np.float32)


@register_backend
class YoloOnnxBackend(DetectorBackend):
    """A YOLO ONNX model on onnxruntime (CPU by default; CUDA or others when asked and present)."""

    type = "yolo"

    def __init__(
        self,
        manifest: ModelManifest,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
        max_batch: int = 8,
    ) -> None:
        super().__init__(
            manifest, providers=providers, intra_op_threads=intra_op_threads, max_batch=max_batch
        )
        self._session: ort.InferenceSession | None = self._open_session()
        model_input = self._session.get_inputs()[0]
        self._input_name: str = model_input.name
        self._output_names: list[str] = [o.name for o in self._session.get_outputs()]
        batch_dim = model_input.shape[0]
        # A model exported with a fixed batch size runs exactly that many rows per call.
        self._static_batch: int | None = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._rows = self._static_batch or self.max_batch

        width, height = manifest.input_size
        self._buffers = [np.zeros((self._rows, 3, height, width), dtype=np.float32) for _ in range(_BUFFERS)]
        self._next_buffer = 0
        # Letterboxing happens in uint8 HWC (what cv2.resize writes), converted in one pass.
        self._canvas = np.full((self._rows, height, width, 3), PAD_VALUE, dtype=np.uint8)
        self._bgr = manifest.channel_order == "bgr"
        self._pixel_factor = np.float32(1 / 255 if manifest.pixel_range == "0..1" else 1)
        self._warm_up()

    @property
    def batch_size(self) -> int:
        return self._rows

    def _open_session(self) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        # No busy-waiting between operators: the vision detector decodes the next batch on the
        # same cores while this one runs, and spinning threads would take that CPU from it
        # (measured with a 0.85 GFLOP model: the pipelined loop went from 73% to 78% of raw).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = set(ort.get_available_providers())
        providers = [p for p in self.providers if p in available]
        missing = [p for p in self.providers if p not in available]
        if missing:
            log.warning(
                "onnxruntime providers %s are not available here (have %s)", missing, sorted(available)
            )
        if not providers:
            raise ConfigurationError(
                f"none of the requested onnxruntime providers {list(self.providers)} is available; "
                f"available: {', '.join(sorted(available))}"
            )
        try:
            return ort.InferenceSession(str(self.manifest.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ConfigurationError(
                f"model {self.manifest.path}: onnxruntime cannot load it: {exc}"
            ) from exc

    def _warm_up(self) -> None:
        """Run the model on zeros so the first real frame does not pay for lazy initialisation
        (memory arenas, kernel selection); both the full batch and a single image are exercised."""
        for rows in dict.fromkeys((self._rows, self._static_batch or 1)):
            self._run(self._buffers[0][:rows])

    def _run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self._session is None:
            raise RuntimeError(f"backend for model {self.manifest.name!r} is closed")
        outputs = self._session.run(self._output_names, {self._input_name: tensor})
        return [np.asarray(o) for o in outputs]

    def prepare(self, images: Sequence[np.ndarray]) -> PreparedBatch:
        n = len(images)
        if not 0 < n <= self._rows:
            raise ValueError(f"prepare takes 1 to {self._rows} images, got {n}")
        width, height = self.manifest.input_size
        scale = np.empty((n, 2), dtype=np.float32)
        pad = np.empty((n, 2), dtype=np.float32)
        sizes = np.empty((n, 2), dtype=np.int32)
        buffer = self._buffers[self._next_buffer]
        self._next_buffer = (self._next_buffer + 1) % _BUFFERS
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image {i}: expected BGR uint8 (H, W, 3), got {image.dtype} {image.shape}")
            h, w = image.shape[:2]
            r = min(width / w, height / h)
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            left, top = (width - nw) // 2, (height - nh) // 2
            canvas = self._canvas[i]
            if (nw, nh) == (w, h):
                canvas[top : top + nh, left : left + nw] = image
            else:
                cv2.resize(
                    image,
                    (nw, nh),
                    dst=canvas[top : top + nh, left : left + nw],
                    interpolation=cv2.INTER_LINEAR,
                )
            # Re-grey only the borders: the image area is overwritten on every call anyway.
            canvas[:top] = PAD_VALUE
            canvas[top + nh :] = PAD_VALUE
            canvas[top : top + nh, :left] = PAD_VALUE
            canvas[top : top + nh, left + nw :] = PAD_VALUE
            # BGR HWC uint8 -> CHW float into the preallocated buffer: split into contiguous
            # planes, then one contiguous multiply per plane. Same values as a strided transpose of
            # the whole batch, in three quarters of the time (0.34 vs 0.46 ms for a 384x384 frame).
            planes = cv2.split(canvas)
            for channel, plane in enumerate(planes if self._bgr else reversed(planes)):
                np.multiply(plane, self._pixel_factor, out=buffer[i, channel])
            scale[i] = (nw / w, nh / h)
            pad[i] = (left, top)
            sizes[i] = (w, h)
        if self._static_batch is None:
            tensor = buffer[:n]
        else:
            buffer[n:] = 0.0  # a fixed-batch model always gets full batches: pad with blank rows
            tensor = buffer
        return PreparedBatch(tensor=tensor, count=n, scale=scale, pad=pad, sizes=sizes)

    def infer(self, prepared: PreparedBatch) -> list[np.ndarray]:
        return self._run(prepared.tensor)

    def decode(self, outputs: list[np.ndarray], prepared: PreparedBatch) -> list[Detections]:
        m = self.manifest
        return decode_yolo(
            outputs[0],
            prepared,
            layout=m.layout,
            num_classes=len(m.classes),
            score_threshold=m.score_threshold,
            iou_threshold=m.iou_threshold,
            max_detections=m.max_detections,
            input_size=m.input_size,
        )

    def close(self) -> None:
        self._session = None  # the session owns the weights and arenas; the buffers are small
