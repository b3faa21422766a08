"""Faces blurred before a frame leaves the server: the public kitchen window (api/public.py).

Diners watching a kitchen through the QR code at its door must not see who works there. Every
public frame is first reduced to a fixed 640x360 (letterboxed, black bars), then the kitchen model
(models/kitchen.onnx, the one the vision detector runs) looks for faces on exactly that frame, and
every face it finds is pixelated and then Gaussian-blurred over a box grown by a fifth on each
side. Its three mask classes (without_mask, with_mask, mask_worn_incorrectly) are faces, masked or
not; the threshold is far below the alert thresholds because a face missed is a face shown, while
a blurred pan costs nothing.

It lives in the spine, not in detectors/, because the API serves the public frames and may import
no service but alerts (the import-linter contracts): so it runs the ONNX graph on onnxruntime
itself and reads the manifest and graph as package data of `models` (importlib.resources, not an
import), reusing nothing of detectors/. Anything that goes wrong (no model, a bad graph, a frame
that does not decode) raises FaceBlurUnavailable and the caller serves no frame: it fails closed.
"""

from __future__ import annotations

import threading
import tomllib
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

# The public frame: small enough that it shows a kitchen, not a person's features, and one size for
# every camera so that a page lays out the same whatever the camera.
WIDTH, HEIGHT = 640, 360
JPEG_QUALITY = 75
FACE_CLASSES = ("without_mask", "with_mask", "mask_worn_incorrectly")
# The kitchen model alerts from 0.10-0.30; a face is blurred from 0.05 (measured on the bundled
# photos: every face scores 0.4 or more, so this leaves a wide margin for a worse camera).
FACE_SCORE = 0.05
# Grown by this fraction of its size on each side: hair, ears and a chin outside the model's box.
EXPAND = 0.2
# At most this many faces per frame: a kitchen has a few people; candidates beyond are overlapping
# boxes the NMS left, and blurring the strongest covers them.
MAX_FACES = 50
PAD_VALUE = 114  # the letterbox grey the model was trained with
# A blurred face is this many blocks across (the grown box), then blurred over half its size:
# measured on the bundled photos, at 6 blocks and a quarter the model still scored the blurred blob
# 0.26-0.43 as a face; at 3 and a half, 0.05 at most.
BLOCKS = 3
# The blurred frame is checked again, and whatever the model still sees there is covered with its
# mean colour (one block): a uniform patch has nothing left to score as a face. A blurred head's
# outline scored 0.11 once in a full suite run (a flake, not a rule), so a second look is not enough
# on its own.
PASSES = 3


class FaceBlurUnavailable(Exception):
    """No face model, or a frame it could not check: serve nothing."""


def _manifest(name: str) -> tuple[Path, tuple[int, int], list[int]]:
    """The graph, its input size and the indices of the face classes, from models/<name>.toml."""
    folder = Path(str(resources.files("models")))
    try:
        manifest = tomllib.loads((folder / f"{name}.toml").read_text(encoding="utf-8"))
        classes = list(manifest["classes"])
        width, height = (int(v) for v in manifest["input_size"])
        path = folder / str(manifest["file"])
    except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise FaceBlurUnavailable(f"face model manifest models/{name}.toml: {exc}") from None
    # The decode below is the YOLOv8 layout's (B, 4+nc, N); another layout would be misread.
    if manifest.get("type") != "yolo" or manifest.get("layout") != "v8":
        raise FaceBlurUnavailable(f"models/{name}.toml: face blurring reads a YOLO v8 layout only")
    faces = [classes.index(c) for c in FACE_CLASSES if c in classes]
    if not faces:
        raise FaceBlurUnavailable(f"models/{name}.toml has none of the face classes {FACE_CLASSES}")
    return path, (width, height), faces


class FaceBlur:
    """Loads the model once; `public_frame` is thread-safe (the API calls it from worker threads)."""

    def __init__(self, model: str = "kitchen") -> None:
        path, self._input_size, self._faces = _manifest(model)
        options = ort.SessionOptions()
        # One thread: the API serves HTTP on the same cores, and a public frame is needed once a
        # second per camera (about 30 ms of CPU at 384x384).
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types, a missing file included
            raise FaceBlurUnavailable(f"face model {path}: {exc}") from None
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def faces(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Face boxes (k, 5): x1, y1, x2, y2 in `image` pixels, and the score."""
        width, height = self._input_size
        h, w = image.shape[:2]
        r = min(width / w, height / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        left, top = (width - nw) // 2, (height - nh) // 2
        canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
        canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        # The Ultralytics export the kitchen model is: RGB, 0..1, CHW.
        tensor = (canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)) / np.float32(255)
        with self._lock:  # one run at a time keeps the one intra-op thread promised above
            (out,) = self._session.run(None, {self._input: np.ascontiguousarray(tensor)})[:1]
        rows = np.asarray(out)[0]  # (4 + nc, N)
        scores = rows[[4 + i for i in self._faces]].max(axis=0)
        keep = scores >= FACE_SCORE
        if not keep.any():
            return np.zeros((0, 5), np.float32)
        cx, cy, bw, bh = rows[:4, keep]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        kept = cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), FACE_SCORE, 0.45)
        picked = np.asarray(kept, dtype=np.int64).reshape(-1)[:MAX_FACES]
        b = boxes[picked]
        x1, y1 = (b[:, 0] - left) / r, (b[:, 1] - top) / r
        x2, y2 = x1 + b[:, 2] / r, y1 + b[:, 3] / r
        return np.stack([x1, y1, x2, y2, scores[keep][picked]], axis=1).astype(np.float32)

    def public_frame(self, jpeg: bytes) -> bytes:
        """The JPEG a public viewer may see: 640x360, every face found blurred. Raises
        FaceBlurUnavailable rather than return a frame it could not check."""
        try:
            image: NDArray[np.uint8] | None = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)  # type: ignore[assignment]
            if image is None:
                raise FaceBlurUnavailable("a frame that does not decode")
            frame = letterbox(image)
            encoded = _jpeg(frame)
            # Each pass looks at the JPEG as it will be served (decoded again), not at the pixels
            # before compression: the check is on exactly what a diner receives.
            # PASSES blurs at most, and one more look after the last: a face still seen then
            # withholds the frame (fail closed) rather than send one nobody checked.
            for attempt in range(PASSES + 1):
                served: NDArray[np.uint8] | None = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # type: ignore[assignment]
                if served is None:
                    raise FaceBlurUnavailable("the blurred frame does not decode")
                found = self.faces(served)
                if not len(found):
                    break
                if attempt == PASSES:
                    raise FaceBlurUnavailable(f"a face still found after {PASSES} blurs")
                for x1, y1, x2, y2, _ in found:
                    blur_box(frame, float(x1), float(y1), float(x2), float(y2), BLOCKS if attempt == 0 else 1)
                encoded = _jpeg(frame)
        except FaceBlurUnavailable:
            raise
        except Exception as exc:  # fail closed whatever broke: onnxruntime, OpenCV, numpy
            raise FaceBlurUnavailable(f"{type(exc).__name__}: {exc}") from None
        return bytes(encoded)


def _jpeg(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise FaceBlurUnavailable("JPEG encoding failed")
    return encoded


def letterbox(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """`image` scaled into WIDTH x HEIGHT, aspect kept, black bars."""
    h, w = image.shape[:2]
    r = min(WIDTH / w, HEIGHT / h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    left, top = (WIDTH - nw) // 2, (HEIGHT - nh) // 2
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return frame


def blur_box(
    frame: NDArray[np.uint8], x1: float, y1: float, x2: float, y2: float, cells: int = BLOCKS
) -> None:
    """Pixelate, then blur, the box grown by EXPAND on each side, in place. Pixelation first: a few
    blocks across leave nothing a deblurring filter could recover; the blur then hides the block
    edges that would still draw a face's outline. One cell is the region's mean colour."""
    h, w = frame.shape[:2]
    gx, gy = (x2 - x1) * EXPAND, (y2 - y1) * EXPAND
    left, top = max(0, int(x1 - gx)), max(0, int(y1 - gy))
    right, bottom = min(w, int(np.ceil(x2 + gx))), min(h, int(np.ceil(y2 + gy)))
    if right - left < 2 or bottom - top < 2:
        return
    region = frame[top:bottom, left:right]
    bw, bh = right - left, bottom - top
    small = cv2.resize(region, (cells, cells), interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_NEAREST)
    kernel = max(3, (min(bw, bh) // 2) | 1)
    region[:] = cv2.GaussianBlur(blocks, (kernel, kernel), 0)
