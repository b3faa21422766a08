"""Camera tamper detection: a lens blacked out, covered, defocused, turned away, or a frozen feed.

Works on the gate's 80x60 grey thumbnail and the 160x120 sharpness figure (`gate.frame_features`),
so it adds tens of microseconds per frame. Blackout, covered and frozen are absolute (a camera can
be covered from its first frame); defocused and turned away compare with the camera's own
baseline, learned from its first normal-looking frames and then adapted slowly, only from frames
that look normal while no tamper is raised, so a tampered view is never learned as the normal one.

A condition must hold for `raise_after_ms` before it is raised and the view must be normal for
`clear_after_ms` before it is cleared: someone walking past the lens for a second raises nothing,
and a flapping view does not flood the enterprise with raise/clear notices.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from ingest.camera.gate import BACKWARDS_TOLERANCE_MS, GreyImage

TamperKind = Literal["blackout", "covered", "defocused", "turned_away", "frozen"]
_F32 = NDArray[np.float32]

# --- per-frame thresholds, on the 80x60 thumbnail (grey levels 0..255) -------------------------
# Blackout: a lost signal (or a sensor that died) decodes to pure black: mean under 4 grey levels,
# std under 4. A cap, tape or a hand on the lens is not quite black: the sensor's dark current and
# light leaking in keep it at 5-40 levels, and that is reported as covered (next). Both raise.
BLACK_MEAN: Final = 4.0
BLACK_STD: Final = 4.0
# Covered: tape, paper or a palm on the lens leaves a nearly uniform field; a real kitchen view has
# a thumbnail std of 30-60, a covered one under 8 even with a light gradient across it.
FLAT_STD: Final = 8.0
# The thumbnail is cut into a 4x4 grid of cells (20x15 thumbnail pixels, 160x120 at 640x480) for
# the structure checks below: a cell "holds structure" when the std of its (blurred) gradients is at
# least 4, far above that of sensor noise (~0.2) and below that of any real edge (> 7).
GRID: Final = 4
EDGE_STD_MIN: Final = 4.0
# Covered, too: a hand held in front of the lens lets light leak around it, a smooth gradient that
# can have a std of 15-25 but no edges: fewer than 3 of the 16 cells hold structure. A kitchen,
# even at 30% of its light, keeps structure in 15-16 of them.
MIN_STRUCTURED: Final = 3
# Defocused: the sharpness, normalised by the thumbnail's variance so that dimmer light, haze or
# steam (less contrast, same focus) do not look like defocus, fell under a quarter of the camera's
# normal. A focused view varies by well under 2x as people move; a blur of sigma 2.5 px at 640x480
# drops it to ~23%, of sigma 4 to ~8%. No separate brightness guard is needed: black and flat views
# were already taken as blackout or covered, and in a dim view noise raises the ratio, not lowers.
DEFOCUS_RATIO: Final = 0.25
# The variance floor of that normalisation: keeps the ratio finite on near-flat views.
VAR_FLOOR: Final = 25.0
# Frozen: a real sensor never repeats a frame; its noise changes hundreds of thumbnail pixels by at
# least one level from one frame to the next. At most 0.3% (14 of 4800) may change in a frozen feed
# with a camera-burnt clock still ticking over it (the seconds digits touch a few pixels).
FROZEN_MAX_CHANGED: Final = 0.003

# --- turned away: the structure of the view against the reference view -------------------------
# Each cell's gradients are correlated with the reference view's. A person in front of the camera
# hides some cells; a camera turned away matches almost none. Comparing cells, not the whole image,
# is what keeps a large person near the lens from looking like a new view. Reference cells without
# structure (a blank wall) cannot tell views apart and are left out of the count.
# A cell matches when its gradients correlate at least 0.7 with the reference's: the same view
# scores > 0.99 under noise, a different part of the room 0.13 +/- 0.30 (2.4% of cells reach 0.7).
CELL_MATCH: Final = 0.7
# Turned away when under a quarter of the informative cells match (at most 3 of 16). Calibrated on
# synthetic kitchens (16-30 seeds): a pan by half a frame or more leaves 0-2 cells matching in 95%
# of views (1 view in 270 stayed above 3); a person at the counter leaves 9-15; one half the frame
# wide and floor to ceiling just in front of the lens 4-9 (3 in 1 position of 270), so it could
# only raise by standing exactly there, motionless, for the whole hold.
VIEW_MATCH_MIN: Final = 0.25
# ... and only when at least this many cells are informative, or the fraction means little.
MIN_INFORMATIVE: Final = 4

# --- timing ------------------------------------------------------------------------------------
# Frames further apart than this are not one continuous observation (the feed stalled, which the
# offline check reports): hold timers start again rather than count the gap as held.
MAX_GAP_MS: Final = 60_000
# The learning buffer is capped: a 5 fps camera learning over a long `learn_ms` keeps the latest.
LEARN_BUFFER: Final = 64
# The baseline adapts at most once a second, and one frame replaces at most 5% of it, however long
# since the last update (a camera back after a long gap must not swap its reference for one frame).
ADAPT_EVERY_MS: Final = 1_000
MAX_ADAPT_STEP: Final = 0.05


@dataclass(frozen=True, slots=True)
class TamperState:
    """The camera's tamper state after one frame.

    `kind` and `since_ms` (when the condition began) describe the tamper episode while `tampered`
    is true and also on the one update that clears it, so its clear notice matches its raise.
    `changed` is true exactly on the update where `tampered` flipped. `detail` says, in words, what
    the frame showed (or what is pending), for logs and violation evidence.
    """

    tampered: bool
    kind: TamperKind | None
    since_ms: int | None
    changed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _Look:
    """What one frame shows: a tamper kind or None, and why, in words; plus the figures the
    baseline learns from (`cells` is None when the frame was rejected before they were needed)."""

    kind: TamperKind | None
    detail: str
    sharp_ratio: float
    cells: _F32 | None


def _gradient_cells(thumb: NDArray[np.float32] | GreyImage) -> _F32:
    """The thumbnail's x and y gradients, cut into GRID x GRID cells: shape (GRID*GRID, n).

    Signed x and y gradients tell views apart better than an edge magnitude would (a horizontal
    counter edge and a vertical door edge differ, so do a dark-to-light and a light-to-dark one),
    and they are linear in the image, so the reference's can be averaged over time directly."""
    # The blur lets an edge move by a thumbnail pixel or two (8-16 px at 640x480: a vibrating mount)
    # and still correlate: after a 16 px shift 5-14 cells still match. A camera pushed by 24 px or
    # more (~4% of its field of view) usually reads as turned away, which is wanted: the zones drawn
    # on its view no longer line up with the kitchen.
    blurred = cv2.GaussianBlur(thumb.astype(np.float32, copy=False), (5, 5), 0)
    grad = np.stack(
        [cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)]
    )
    h, w = (grad.shape[1] // GRID) * GRID, (grad.shape[2] // GRID) * GRID
    cells = grad[:, :h, :w].reshape(2, GRID, h // GRID, GRID, w // GRID).transpose(1, 3, 0, 2, 4)
    return np.ascontiguousarray(cells.reshape(GRID * GRID, -1), dtype=np.float32)


def _normalised(cells: _F32) -> tuple[_F32, _F32]:
    """Each cell centred and scaled to unit norm (so a dot product is a correlation, blind to the
    light's gain and offset), and each cell's std (how much structure it holds)."""
    centred = cells - cells.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    unit = centred / np.maximum(norm, 1e-6)[:, None]
    return unit.astype(np.float32, copy=False), (norm / np.sqrt(cells.shape[1])).astype(np.float32)


class TamperDetector:
    """Per-camera tamper detector over thumbnails. Not thread-safe: one per camera, called by one
    thread at a time, with timestamps that (mostly) increase."""

    def __init__(
        self,
        *,
        raise_after_ms: int = 10_000,
        clear_after_ms: int = 10_000,
        frozen_after_ms: int = 30_000,
        learn_frames: int = 10,
        learn_ms: int = 10_000,
        adapt_ms: int = 300_000,
    ) -> None:
        """`frozen_after_ms` is longer than `raise_after_ms` by default because streaming encoders
        may repeat a static view exactly between keyframes for several seconds; a stuck feed stays
        stuck, so waiting costs nothing. Learning ends once `learn_frames` normal frames spanning
        `learn_ms` were seen (both, so neither a 5 fps nor a 0.2 fps camera learns from a moment).
        The baseline then follows the normal view with a time constant of `adapt_ms`."""
        for name, value, low in (
            ("raise_after_ms", raise_after_ms, 0),
            ("clear_after_ms", clear_after_ms, 0),
            ("frozen_after_ms", frozen_after_ms, 0),
            ("learn_frames", learn_frames, 1),
            ("learn_ms", learn_ms, 0),
            ("adapt_ms", adapt_ms, 1),
        ):
            if not value >= low:
                raise ValueError(f"{name} must be at least {low}, got {value!r}")
        self.raise_after_ms = int(raise_after_ms)
        self.clear_after_ms = int(clear_after_ms)
        self.frozen_after_ms = int(frozen_after_ms)
        self.learn_frames = int(learn_frames)
        self.learn_ms = int(learn_ms)
        self.adapt_ms = int(adapt_ms)
        self._tampered = False
        self._kind: TamperKind | None = None
        self._since: int | None = None  # start of the raised episode
        self._pending_since: int | None = None  # start of the current abnormal run, not yet raised
        self._normal_since: int | None = None  # start of the current normal run, while raised
        self._still_since: int | None = None  # first frame of the current run of noise-free frames
        self._prev: GreyImage | None = None
        self._last_ts: int | None = None
        self.relearn()

    @property
    def learning(self) -> bool:
        """True until the baseline (normal sharpness and reference view) has been learned."""
        return self._ref_unit is None

    def relearn(self) -> None:
        """Forget the baseline and learn it again from the next normal frames: for an operator who
        accepts a camera's new view. A raised tamper clears once the view has been normal (which,
        while learning, means neither dark, flat nor frozen) for `clear_after_ms`."""
        self._learn: deque[tuple[GreyImage, float]] = deque(maxlen=LEARN_BUFFER)
        self._learn_since: int | None = None
        self._ref_cells: _F32 | None = None  # the reference view's gradient cells
        self._ref_unit: _F32 | None = None  # ... normalised
        self._informative: NDArray[np.bool_] | None = None  # reference cells that hold structure
        self._base_sharp = 0.0
        self._adapted_at = 0  # ts of the last baseline update

    def update(self, thumb: GreyImage, sharpness: float, ts_ms: int) -> TamperState:
        """Take one frame's thumbnail (`gate.thumbnail`), sharpness (`gate.sharpness`) and
        timestamp in ms; return the camera's tamper state."""
        if thumb.ndim != 2 or thumb.dtype != np.uint8 or min(thumb.shape) < 2 * GRID:
            raise ValueError(f"expected a 2-D uint8 thumbnail, got {thumb.dtype} {thumb.shape}")
        if self._prev is not None and self._prev.shape != thumb.shape:
            self.relearn()  # a different thumbnail size: nothing learned (or half-learned) applies
            self._prev = None
        ts = self._clock(ts_ms)
        look = self._look(thumb, float(sharpness), ts)
        self._prev = thumb.copy()
        if look.kind is None:
            self._learn_or_adapt(thumb, look, ts)
        return self._advance(look, ts)

    def _clock(self, ts_ms: int) -> int:
        """Timestamps that jump back (a looped file) or forward (a stalled feed) break continuity:
        every running hold starts again. Small steps back are taken as no time passing."""
        last = self._last_ts
        ts = int(ts_ms)
        if last is not None and (ts < last - BACKWARDS_TOLERANCE_MS or ts - last > MAX_GAP_MS):
            self._pending_since = self._normal_since = self._still_since = None
            if self._learn_since is not None:
                self._learn_since = ts
            self._adapted_at = min(self._adapted_at, ts)
        elif last is not None:
            ts = max(ts, last)
        self._last_ts = ts
        return ts

    def _look(self, thumb: GreyImage, sharpness: float, ts: int) -> _Look:
        mean_, std_ = cv2.meanStdDev(thumb)
        mean, std = float(mean_[0, 0]), float(std_[0, 0])
        ratio = sharpness / max(std * std, VAR_FLOOR)
        stats = f"mean {mean:.0f}, std {std:.1f}"

        prev = self._prev
        if prev is not None:
            changed = int(np.count_nonzero(cv2.absdiff(thumb, prev)))
            still = changed <= FROZEN_MAX_CHANGED * thumb.size
        else:
            changed, still = -1, False
        if not still:
            self._still_since = None
        elif self._still_since is None:
            self._still_since = ts

        if mean < BLACK_MEAN and std < BLACK_STD:
            return _Look("blackout", f"picture black ({stats})", ratio, None)
        cells = _gradient_cells(thumb)
        unit, cell_std = _normalised(cells)

        def look(kind: TamperKind | None, why: str) -> _Look:
            return _Look(kind, why, ratio, cells)

        structured = int(np.count_nonzero(cell_std >= EDGE_STD_MIN))
        if std < FLAT_STD:
            return look("covered", f"picture flat ({stats})")
        if structured < MIN_STRUCTURED:
            return look(
                "covered", f"picture featureless: edges in {structured} of {GRID * GRID} cells ({stats})"
            )
        if still:
            return look("frozen", f"no sensor noise: {changed} of {thumb.size} pixels changed")
        ref_unit, informative = self._ref_unit, self._informative
        if ref_unit is None or informative is None:
            return look(None, f"learning the normal view ({len(self._learn)}/{self.learn_frames} frames)")
        if ratio < DEFOCUS_RATIO * self._base_sharp:
            pct = 100 * ratio / self._base_sharp
            return look("defocused", f"sharpness at {pct:.0f}% of this camera's normal ({stats})")
        n_informative = int(np.count_nonzero(informative))
        if n_informative >= MIN_INFORMATIVE:
            ncc = np.einsum("ij,ij->i", unit, ref_unit)
            matched = int(np.count_nonzero((ncc >= CELL_MATCH) & informative))
            if matched < VIEW_MATCH_MIN * n_informative:
                return look("turned_away", f"view matches {matched} of {n_informative} reference cells")
        return look(None, f"view normal ({stats})")

    def _learn_or_adapt(self, thumb: GreyImage, look: _Look, ts: int) -> None:
        """Learn the baseline from normal-looking frames (also while a raised tamper waits to clear:
        with no baseline yet, that is the best evidence there is), then adapt it, but only while no
        tamper is raised."""
        if look.cells is None:
            return
        if self._ref_cells is None:
            self._learn.append((thumb.copy(), look.sharp_ratio))
            if self._learn_since is None:
                self._learn_since = ts
            if len(self._learn) >= self.learn_frames and ts - self._learn_since >= self.learn_ms:
                # Medians: a person crossing some of the learning frames is voted out.
                median = np.median(np.stack([t for t, _ in self._learn]), axis=0).astype(np.float32)
                self._set_reference(_gradient_cells(median))
                self._base_sharp = float(np.median([r for _, r in self._learn]))
                self._learn.clear()
                self._adapted_at = ts
            return
        if self._tampered:
            return  # the view looks normal again, but until the tamper clears it is not trusted
        # Follow slow change (daylight, a moved pot) with time constant adapt_ms; people passing
        # through are averaged away. Once a second is plenty for minutes-long change, and spares
        # a fast camera most of the cost.
        if ts - self._adapted_at >= ADAPT_EVERY_MS:
            alpha = min((ts - self._adapted_at) / self.adapt_ms, MAX_ADAPT_STEP)
            self._adapted_at = ts
            self._set_reference(self._ref_cells + alpha * (look.cells - self._ref_cells))
            self._base_sharp += alpha * (look.sharp_ratio - self._base_sharp)

    def _set_reference(self, cells: _F32) -> None:
        self._ref_cells = cells
        self._ref_unit, ref_std = _normalised(cells)
        self._informative = ref_std >= EDGE_STD_MIN

    def _advance(self, look: _Look, ts: int) -> TamperState:
        """The hysteresis: raise after `raise_after_ms` of abnormal frames (`frozen_after_ms` of
        noise-free ones), clear after `clear_after_ms` of normal ones."""
        if not self._tampered:
            if look.kind is None:
                self._pending_since = None
                return TamperState(False, None, None, False, look.detail)
            if self._pending_since is None:
                self._pending_since = ts
            if look.kind == "frozen":
                start = ts if self._still_since is None else self._still_since
                hold = self.frozen_after_ms
            else:
                start, hold = self._pending_since, self.raise_after_ms
            if ts - start < hold:
                return TamperState(
                    False,
                    None,
                    None,
                    False,
                    f"{look.detail}; for {(ts - start) / 1000:.1f} s of {hold / 1000:g} s",
                )
            self._tampered, self._kind, self._since = True, look.kind, start
            self._pending_since = self._normal_since = None
            return TamperState(True, look.kind, start, True, look.detail)

        if look.kind is not None:
            self._normal_since = None
            return TamperState(True, self._kind, self._since, False, look.detail)
        if self._normal_since is None:
            self._normal_since = ts
        normal_for = ts - self._normal_since
        if normal_for < self.clear_after_ms:
            detail = (
                f"{look.detail}; normal for {normal_for / 1000:.1f} s of {self.clear_after_ms / 1000:g} s"
            )
            return TamperState(True, self._kind, self._since, False, detail)
        kind, since = self._kind, self._since
        self._tampered, self._kind, self._since, self._normal_since = False, None, None, None
        return TamperState(False, kind, since, True, look.detail)
