"""Edge-side motion gating: send a camera's frame to the vision detectors only when something in
the view changed, plus a periodic keyframe so the detectors never work from a stale picture.

A kitchen camera is static most of the time; with thousands of cameras per bureau, the frames
that are not sent are most of the saving. The gate therefore works on a tiny grey thumbnail that
is computed once per frame (`frame_features`) and shared with the tamper detector, so a gated frame
costs its JPEG decode, one colour conversion, three exact 2x box-filter halvings, a Laplacian on
160x120 and a compare (~0.15 ms at 640x480 with the tamper check, of which ~0.04 ms is cvtColor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

GreyImage = NDArray[np.uint8]
# Frames come from cv2.imdecode / VideoCapture, typed loosely by OpenCV: any array is accepted and
# checked at run time (uint8, grey, BGR or BGRA).
Image = NDArray[Any]

# Sharpness is measured on a 160x120 grey image: a 640x480 frame reduced by an exact 4x4 average.
# Defocus that matters (a lens turned out of focus) blurs by several pixels at 640, i.e. still one
# or more at 160, so the Laplacian still sees it, while the Laplacian costs 1/16 of full size.
SHARPNESS_SIZE: Final = (160, 120)  # (width, height), as cv2 wants it
# The thumbnail is the 160x120 image halved again: 80x60, an exact 8x8 block mean of a 640x480
# frame. Averaging 64 pixels divides sensor noise by 8 (so fixed pixel thresholds work on any
# camera), 4800 pixels compare in microseconds, and an object of 30x30 px at 640x480 still covers
# ~14 thumbnail pixels (3.75 x 3.75), enough to see it move. 4:3 matches the usual camera; a 16:9
# frame is squashed, which is harmless because a camera is only ever compared with itself.
# Deriving it from the 160x120 image makes it nearly free (one more exact halving, ~2 µs).
THUMB_SIZE: Final = (80, 60)  # (width, height)

# A grey level counts as changed when it moved by more than 12 of 255 (~5%). After the 8x8 average
# and the blur, sensor noise (±2..8 levels per pixel) is below one level, and JPEG re-quantisation
# or auto-exposure flutter shift a thumbnail pixel by a few levels; a person or a rat against a
# kitchen background differs by 20+ levels. 12 sits between the two with margin on both sides.
DEFAULT_PIXEL_THRESHOLD: Final = 12
# Fraction of thumbnail pixels that must change: 0.0025 x 4800 = 12 pixels (the same ~12 pixels
# that 0.004 is of a 64x48 thumbnail). A 30x30 px object at 640x480 covers ~14 thumbnail pixels,
# so it triggers as soon as it appears; once it moves by its own size the old and the new place
# both differ (~28 pixels, score ~0.006). A smaller object (20x20 px, ~6 pixels) triggers once it
# has moved by its size, because the gate compares with the last *sent* frame and change
# accumulates. Noise alone never reaches 12 pixels over the threshold (see above).
DEFAULT_MOTION_FRACTION: Final = 0.0025
# Even a static view is sent every 10 s, so the detectors see a person who stands still (a cook
# without a hat at the stove) and a violation that appeared too slowly to count as motion.
DEFAULT_KEYFRAME_INTERVAL_MS: Final = 10_000
# Frames pushed by edge boxes over concurrent HTTP requests may arrive a little out of order; a
# step back this small is treated as no time passing. A larger one is a looped video file or a
# camera clock reset: the gate starts again from that frame.
BACKWARDS_TOLERANCE_MS: Final = 1_000


def _grey(frame: Image) -> GreyImage:
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY), dtype=np.uint8)
    raise ValueError(f"expected a grey, BGR or BGRA uint8 image, got shape {frame.shape}")


def _resize(image: GreyImage, size: tuple[int, int]) -> GreyImage:
    """Shrink to `size` (width, height) by box averaging.

    INTER_AREA is a true box average when shrinking, so it low-passes instead of aliasing: no moiré,
    and noise averages out. Its exact-halving path is vectorised and about 7x faster than its
    general path (a 640x480 image to 160x120: ~11 µs as two halvings, ~70 µs in one step), so the
    image is halved while it is at least twice the target, and only the remainder is general."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        half = (image.shape[1] // 2, image.shape[0] // 2)
        image = np.asarray(cv2.resize(image, half, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _laplacian_variance(grey_small: GreyImage) -> float:
    laplacian = cv2.Laplacian(grey_small, cv2.CV_16S)  # |value| <= 4 * 255: fits, and is faster
    _, std = cv2.meanStdDev(laplacian)
    return float(std[0, 0]) ** 2


def frame_features(frame: Image) -> tuple[GreyImage, float]:
    """The thumbnail (80x60 grey uint8) and the sharpness of one frame, sharing one grey conversion
    and one downscale: what the gate and the tamper detector need, at the lowest cost."""
    small = _resize(_grey(frame), SHARPNESS_SIZE)
    return _resize(small, THUMB_SIZE), _laplacian_variance(small)


def thumbnail(frame: Image) -> GreyImage:
    """The frame (BGR, BGRA or grey uint8, any size) as an 80x60 grey uint8 thumbnail.

    Call `frame_features` instead when the sharpness is needed too: it converts only once."""
    return _resize(_resize(_grey(frame), SHARPNESS_SIZE), THUMB_SIZE)


def sharpness(image: Image) -> float:
    """Variance of the Laplacian of the image (BGR, BGRA or grey uint8) at 160x120: high for a
    focused, textured view, near the noise floor for a defocused or covered lens. Only meaningful
    relative to the same camera's own history (it depends on the scene)."""
    return _laplacian_variance(_resize(_grey(image), SHARPNESS_SIZE))


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether to send a frame, why, and the changed fraction of the thumbnail that decided it
    (0.0 for the first frame)."""

    send: bool
    reason: Literal["first", "motion", "keyframe", "static"]
    score: float


@dataclass(slots=True)
class GateCounters:
    """Per-gate totals. `sent` includes keyframes and first frames; `gated` frames were dropped."""

    sent: int = 0
    gated: int = 0
    keyframes: int = 0


class MotionGate:
    """Per-camera motion gate over thumbnails (see `thumbnail`). Not thread-safe: one per camera,
    called by one thread at a time.

    A frame is compared with the last frame that was *sent*, not with the previous one, so slow
    change (a rat creeping, a pan left on the counter bit by bit) accumulates until it triggers."""

    def __init__(
        self,
        *,
        motion_fraction: float = DEFAULT_MOTION_FRACTION,
        pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD,
        keyframe_interval_ms: int = DEFAULT_KEYFRAME_INTERVAL_MS,
    ) -> None:
        if not 0.0 < motion_fraction <= 1.0:
            raise ValueError(f"motion_fraction must be in (0, 1], got {motion_fraction!r}")
        if not 0 < pixel_threshold < 255:
            raise ValueError(
                f"pixel_threshold must be between 1 and 254 grey levels, got {pixel_threshold!r}"
            )
        if not keyframe_interval_ms > 0:
            raise ValueError(f"keyframe_interval_ms must be positive, got {keyframe_interval_ms!r}")
        self.motion_fraction = float(motion_fraction)
        self.pixel_threshold = int(pixel_threshold)
        self.keyframe_interval_ms = int(keyframe_interval_ms)
        self.counters = GateCounters()
        self._reference: GreyImage | None = None  # blurred thumbnail of the last sent frame
        self._sent_ts = 0  # ts_ms of the last sent frame
        self._last_ts = 0  # ts_ms of the last frame seen (sent or not)

    def reset(self) -> None:
        """Forget the reference: the next frame is sent as "first". Counters are kept."""
        self._reference = None

    def check(self, thumb: GreyImage, ts_ms: int) -> GateDecision:
        """Decide on one frame, given its thumbnail and its timestamp in ms."""
        if thumb.ndim != 2 or thumb.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 thumbnail, got {thumb.dtype} {thumb.shape}")
        # A light blur: single-pixel flicker and the sub-pixel jitter of strong edges (a vibrating
        # mount, JPEG block shifts) are smoothed below the threshold; real objects are not.
        blurred = np.asarray(cv2.GaussianBlur(thumb, (3, 3), 0), dtype=np.uint8)
        reference = self._reference
        if reference is None or reference.shape != blurred.shape:
            self._last_ts = ts_ms
            return self._send(blurred, ts_ms, "first", 0.0)

        clock_reset = ts_ms < self._last_ts - BACKWARDS_TOLERANCE_MS
        self._last_ts = max(self._last_ts, ts_ms) if not clock_reset else ts_ms
        changed = int(np.count_nonzero(cv2.absdiff(blurred, reference) > self.pixel_threshold))
        score = changed / blurred.size
        if score >= self.motion_fraction:
            return self._send(blurred, ts_ms, "motion", score)
        if clock_reset or ts_ms - self._sent_ts >= self.keyframe_interval_ms:
            return self._send(blurred, ts_ms, "keyframe", score)
        self.counters.gated += 1
        return GateDecision(False, "static", score)

    def _send(
        self, blurred: GreyImage, ts_ms: int, reason: Literal["first", "motion", "keyframe"], score: float
    ) -> GateDecision:
        self._reference = blurred
        self._sent_ts = ts_ms
        self.counters.sent += 1
        if reason == "keyframe":
            self.counters.keyframes += 1
        return GateDecision(True, reason, score)
