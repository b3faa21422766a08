"""A simulated kitchen camera: a cartoon scene, scripted violations and camera faults.

`KitchenScene.render(t)` is a pure function of the seed, the script and the scene time `t`, so
tests can ask for the frame at any moment and know from `KitchenScene.active(t)` what it shows.
Three workers prepare food behind a counter; a `Script` makes one take off their mask, light a
cigarette, lets a rat cross the floor, or tampers with the camera (lens covered, signal lost,
defocused, turned away, frozen). Colours come from `simulators.palette`, whose marker rules this
module keeps: a marker colour fills a 32x32 area only while its event is active.

Geometry is laid out on a 640x480 design canvas and scaled to the frame size.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from simulators import palette as pal

Frame = NDArray[np.uint8]
Colour = tuple[int, int, int]

KINDS: Final = frozenset(
    {"no_mask", "smoking", "rat", "lens_covered", "blackout", "defocus", "turned_away", "freeze"}
)
WORKER_KINDS: Final = frozenset({"no_mask", "smoking"})  # events that need a `worker`
MAX_WORKERS: Final = 3  # the counter has room for three people at 640 px

# Sensor noise, ± grey levels per channel: real cameras never repeat a frame bit for bit, and the
# downstream motion gate must learn to ignore this much (JPEG alone adds about as much).
NOISE: Final = 3
# Gaussian sigma of the defocus fault: at 8+ the variance of the Laplacian drops by >90%, which is
# what a blur-tamper check looks for; 9 keeps the worker outlines just recognisable.
DEFOCUS_SIGMA: Final = 9.0
# A hand or tape over the lens lets a little light through: a very dark, flat grey (from HAIR so it
# stays a palette colour, 0.5 away from every marker).
COVERED: Final[Colour] = (pal.HAIR[0] // 5, pal.HAIR[1] // 5, pal.HAIR[2] // 5)
BLACK: Final[Colour] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class ScriptedEvent:
    """One scripted happening, active for `start_s <= t < end_s` of the scene's (looped) time.

    `worker` picks who misbehaves (no_mask, smoking); `position` is the height of a rat's path
    across the floor, 0 (by the counter) to 1 (the frame's bottom edge).
    """

    kind: str
    start_s: float
    end_s: float
    worker: int = 0
    position: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)) or self.start_s < 0:
            raise ValueError(f"{self.kind}: start_s and end_s must be finite, start_s >= 0")
        if self.end_s <= self.start_s:
            raise ValueError(f"{self.kind}: end_s ({self.end_s}) must be after start_s ({self.start_s})")
        if not 0 <= self.worker < MAX_WORKERS:
            raise ValueError(f"{self.kind}: worker {self.worker} out of range 0..{MAX_WORKERS - 1}")
        if not 0.0 <= self.position <= 1.0:
            raise ValueError(f"{self.kind}: position {self.position} out of range 0..1")

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


# Key -> (what the error message calls it, the Python types that TOML or JSON may give for it).
_FIELDS: Final[dict[str, tuple[str, tuple[type, ...]]]] = {
    "kind": ("a string", (str,)),
    "start_s": ("a number", (int, float)),
    "end_s": ("a number", (int, float)),
    "worker": ("an integer", (int,)),
    "position": ("a number", (int, float)),
}


@dataclass(frozen=True, slots=True)
class Script:
    """The scripted events of a scene, in any order; they may overlap."""

    events: tuple[ScriptedEvent, ...] = ()

    @property
    def duration_s(self) -> float:
        return max((e.end_s for e in self.events), default=0.0)

    def active(self, t: float) -> list[ScriptedEvent]:
        return [e for e in self.events if e.active(t)]

    @classmethod
    def parse(cls, spec: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> Script:
        """Builds a script from a list of event tables, or a `{"events": [...]}` table (TOML's
        `[[events]]`), rejecting unknown keys and wrongly typed values with the event's index."""
        if isinstance(spec, Mapping):
            if set(spec) != {"events"}:
                raise ValueError("a script table must have exactly one key, 'events'")
            spec = spec["events"]
        if isinstance(spec, str | bytes) or not isinstance(spec, Sequence):
            raise ValueError("a script is a list of event tables")
        events = []
        for i, item in enumerate(spec):
            if not isinstance(item, Mapping):
                raise ValueError(f"event {i}: expected a table, got {type(item).__name__}")
            if unknown := set(item) - set(_FIELDS):
                raise ValueError(f"event {i}: unknown keys {sorted(unknown)}; allowed: {list(_FIELDS)}")
            if missing := {"kind", "start_s", "end_s"} - set(item):
                raise ValueError(f"event {i}: missing {sorted(missing)}")
            args: dict[str, Any] = {}
            for key, value in item.items():
                what, types = _FIELDS[key]
                # bool is an int in Python, but `worker = true` is a mistake, not worker 1.
                if not isinstance(value, types) or isinstance(value, bool):
                    raise ValueError(f"event {i}: {key} must be {what}, got {value!r}")
                if what == "a number" and isinstance(value, int | float):
                    value = float(value)
                args[key] = value
            if "worker" in args and args["kind"] not in WORKER_KINDS:
                raise ValueError(f"event {i}: worker applies only to {sorted(WORKER_KINDS)}")
            if "position" in args and args["kind"] != "rat":
                raise ValueError(f"event {i}: position applies only to rat")
            try:
                events.append(ScriptedEvent(**args))
            except ValueError as exc:
                raise ValueError(f"event {i}: {exc}") from None
        return cls(tuple(events))


# The demo loop: each violation long enough (8-15 s) for a 5 fps detector and an alert debounce to
# see it, with quiet stretches between so each alert opens and closes on its own.
DEMO_LOOP_S: Final = 120.0
DEMO_SCRIPT: Final = Script.parse(
    [
        {"kind": "no_mask", "start_s": 10, "end_s": 25, "worker": 1},
        {"kind": "smoking", "start_s": 35, "end_s": 47, "worker": 2},
        {"kind": "rat", "start_s": 57, "end_s": 65, "position": 0.6},
        {"kind": "lens_covered", "start_s": 78, "end_s": 90},
    ]
)


@dataclass(frozen=True, slots=True)
class _Worker:
    home_x: float  # design px
    amp: float  # design px of slow side-to-side wandering
    period_s: float
    phase: float


class KitchenScene:
    """A kitchen seen from the wall opposite the preparation counter."""

    def __init__(
        self,
        script: Script = Script(),
        *,
        seed: int = 0,
        width: int = 640,
        height: int = 480,
        workers: int = 3,
        loop_s: float | None = None,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}")
        if width < 320 or height < 240:
            # Below this the marker areas shrink under the model's 16 px cells.
            raise ValueError("frame must be at least 320x240")
        for e in script.events:
            if e.kind in WORKER_KINDS and e.worker >= workers:
                raise ValueError(f"{e.kind} at {e.start_s}s: worker {e.worker} but only {workers} workers")
        if loop_s is not None and loop_s < script.duration_s:
            raise ValueError(f"loop_s {loop_s} cuts the script, which runs to {script.duration_s}s")
        self.script, self.seed, self.width, self.height, self.loop_s = script, seed, width, height, loop_s
        self._sx, self._sy = width / 640, height / 480
        self._s = min(self._sx, self._sy)
        rng = np.random.default_rng(seed)
        spacing = 520 / workers
        # Periods of 24-40 s and 25-40 px of wandering: at most ~20 px/s, a few px between frames.
        self._workers = [
            _Worker(60 + spacing * (i + 0.5), rng.uniform(25, 40), rng.uniform(24, 40), rng.uniform(0, 6.3))
            for i in range(workers)
        ]
        self._kitchen = self._draw_kitchen_background()
        self._elsewhere = self._draw_elsewhere()
        self._frozen: tuple[float, Frame] | None = None

    # -- public -------------------------------------------------------------------------------

    def local_time(self, t: float) -> float:
        return t % self.loop_s if self.loop_s else t

    def active(self, t: float) -> set[str]:
        """The kinds of event the script has running at scene time `t` (the tests' ground truth).
        A tamper event hides the scene, so a violation it overlaps is active but not visible."""
        return {e.kind for e in self.script.active(self.local_time(t))}

    def regions(self) -> dict[str, tuple[int, int, int, int]]:
        """Named areas of the frame as (x, y, w, h), for zones downstream (prep area, floor)."""
        boxes = {"prep_counter": (60, 285, 520, 85), "floor": (0, 370, 640, 110), "bin": (578, 318, 56, 128)}
        return {k: (*self._p(x, y), self._x(w), self._y(h)) for k, (x, y, w, h) in boxes.items()}

    def render(self, t: float) -> Frame:
        """The BGR frame at scene time `t` seconds."""
        local = self.local_time(t)
        events = self.script.active(local)
        freezes = [e for e in events if e.kind == "freeze"]
        if freezes:
            # A stuck feed repeats the last frame it sent, noise and all, bit for bit.
            # Keyed to the millisecond: float error in `t - since` must not change the frame.
            key = round(t - (local - min(e.start_s for e in freezes)), 3)
            if self._frozen is None or self._frozen[0] != key:
                self._frozen = (key, self._render(key))
            return self._frozen[1].copy()
        return self._render(t)

    # -- drawing ------------------------------------------------------------------------------

    def _render(self, t: float) -> Frame:
        """The frame at `t` as if no freeze were scripted."""
        events = [e for e in self.script.active(self.local_time(t)) if e.kind != "freeze"]
        kinds = {e.kind for e in events}
        if "blackout" in kinds:
            return np.zeros((self.height, self.width, 3), np.uint8)
        frame: Frame
        if "lens_covered" in kinds:
            frame = np.full((self.height, self.width, 3), COVERED, np.uint8)
        elif "turned_away" in kinds:
            frame = self._elsewhere.copy()
        else:
            frame = self._kitchen.copy()
            self._draw_people(frame, t, events)
            if "defocus" in kinds:
                frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), DEFOCUS_SIGMA * self._s), np.uint8)
        return self._add_noise(frame, t)

    def _add_noise(self, frame: Frame, t: float) -> Frame:
        # Seeded by the frame's millisecond so render(t) stays a pure function of t.
        rng = np.random.default_rng([self.seed, round(t * 1000) & 0xFFFFFFFF])
        noise = rng.integers(-NOISE, NOISE + 1, frame.shape, dtype=np.int16)
        noisy: Frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return noisy

    def _x(self, v: float) -> int:
        return round(v * self._sx)

    def _y(self, v: float) -> int:
        return round(v * self._sy)

    def _p(self, x: float, y: float) -> tuple[int, int]:
        return self._x(x), self._y(y)

    def _n(self, v: float) -> int:
        """A size (radius, thickness) in design px, scaled uniformly."""
        return max(1, round(v * self._s))

    def _rect(self, img: Frame, x0: float, y0: float, x1: float, y1: float, c: Colour, th: int = -1) -> None:
        cv2.rectangle(img, self._p(x0, y0), self._p(x1, y1), c, th if th < 0 else self._n(th))

    def _poly(self, img: Frame, pts: Iterable[tuple[float, float]], c: Colour) -> None:
        cv2.fillPoly(img, [np.array([self._p(x, y) for x, y in pts], np.int32)], c)

    def _line(self, img: Frame, a: tuple[float, float], b: tuple[float, float], c: Colour, th: float) -> None:
        cv2.line(img, self._p(*a), self._p(*b), c, self._n(th), cv2.LINE_AA)

    def _ellipse(self, img: Frame, cx: float, cy: float, ax: float, ay: float, c: Colour) -> None:
        # Filled shapes use 8-connected edges (no anti-aliasing): a marker area must be solid.
        cv2.ellipse(img, self._p(cx, cy), (self._n(ax), self._n(ay)), 0, 0, 360, c, -1, cv2.LINE_8)

    def _draw_kitchen_background(self) -> Frame:
        img = np.full((self.height, self.width, 3), pal.WALL, np.uint8)
        for y in range(150, 271, 24):  # tiled splashback behind the workers
            self._line(img, (0, y), (640, y), pal.TILE_LINE, 1)
        for x in range(0, 641, 32):
            self._line(img, (x, 150), (x, 270), pal.TILE_LINE, 1)
        self._poly(img, [(200, 0), (440, 0), (470, 62), (170, 62)], pal.STEEL)  # extractor hood
        self._rect(img, 20, 92, 170, 100, pal.STEEL)  # a shelf with two pots on it
        self._rect(img, 36, 62, 76, 92, pal.STEEL)
        self._rect(img, 100, 70, 150, 92, pal.COUNTER)
        self._rect(img, 0, 270, 640, 480, pal.FLOOR)
        for y in (300, 335, 375, 420, 470):  # floor tiles, widening towards the camera
            self._line(img, (0, y), (640, y), pal.TILE_LINE, 1)
        for x in range(-400, 1041, 80):
            self._line(img, (320 + (x - 320) * 0.45, 270), (x, 480), pal.TILE_LINE, 1)
        self._rect(img, 584, 330, 630, 445, pal.BIN)  # the rubbish bin, lid on
        self._rect(img, 578, 318, 634, 334, pal.BIN_LID)
        self._rect(img, 598, 310, 614, 318, pal.BIN_LID)
        return img

    def _draw_counter(self, img: Frame) -> None:
        self._poly(img, [(72, 285), (568, 285), (580, 315), (60, 315)], pal.COUNTER)  # worktop
        self._rect(img, 60, 315, 580, 370, pal.STEEL)  # front panel
        self._line(img, (60, 342), (580, 342), pal.TILE_LINE, 1)
        self._rect(img, 120, 290, 200, 306, pal.UNIFORM)  # chopping boards and a bowl
        self._rect(img, 420, 290, 500, 306, pal.UNIFORM)
        self._ellipse(img, 300, 296, 26, 9, pal.STEEL)

    def _draw_people(self, img: Frame, t: float, events: list[ScriptedEvent]) -> None:
        bare = {e.worker for e in events if e.kind == "no_mask"}
        smoking = {e.worker for e in events if e.kind == "smoking"}
        xs = []
        for i, w in enumerate(self._workers):
            x = w.home_x + w.amp * math.sin(2 * math.pi * t / w.period_s + w.phase)
            x += 0.3 * w.amp * math.sin(2 * math.pi * t / (0.37 * w.period_s) + 2 * w.phase)
            bob = 1.5 * math.sin(2 * math.pi * t / 1.7 + i)  # breathing and shifting weight
            xs.append((x, bob))
            self._draw_body(img, x, bob, bare=i in bare)
        self._draw_counter(img)
        puffs = []
        for i, (x, bob) in enumerate(xs):
            chop = 6 * abs(math.sin(math.pi * 1.4 * t + i))  # knife hand going up and down
            self._arm(img, (x - 38, 192 + bob), (x - 24, 297))
            if i in smoking:
                self._arm(img, (x + 38, 192 + bob), (x + 34, 160 + bob))
                self._line(img, (x + 34, 160 + bob), (x + 46, 152 + bob), pal.UNIFORM, 3)
                puffs.append((x + 66, 146 + bob))
            else:
                self._arm(img, (x + 38, 192 + bob), (x + 26, 293 - chop))
        for e in events:
            if e.kind == "rat":
                self._draw_rat(img, e, t)
        for x, y in puffs:
            # Ember and smoke: a 50 px disc, so that a solid 32x32 square fits inside it.
            self._ellipse(img, x, y, 25, 25, pal.CIGARETTE_EMBER)

    def _draw_body(self, img: Frame, x: float, bob: float, *, bare: bool) -> None:
        y = bob
        self._ellipse(img, x, 215 + y, 44, 40, pal.UNIFORM)  # shoulders and chest
        self._rect(img, x - 44, 215 + y, x + 44, 300, pal.UNIFORM)
        self._line(img, (x - 12, 178 + y), (x, 196 + y), pal.STEEL, 2)  # collar
        self._line(img, (x + 12, 178 + y), (x, 196 + y), pal.STEEL, 2)
        for by in (214, 236, 258):
            self._ellipse(img, x, by + y, 2, 2, pal.STEEL)
        self._rect(img, x - 28, 116 + y, x + 28, 140 + y, pal.HAIR)  # shows beside the face
        self._ellipse(img, x, 96 + y, 30, 16, pal.HAT)  # chef's hat
        self._rect(img, x - 27, 100 + y, x + 27, 120 + y, pal.HAT)
        # Face: 50x48 px. Masked, only a 10 px eyes band of skin shows; bare, the skin below the
        # eyes is a solid 50x40 area (>= the 40x36 the marker rule promises).
        self._rect(img, x - 25, 121 + y, x + 25, 168 + y, pal.SKIN_BAND)
        for ex in (-10, 10):
            self._ellipse(img, x + ex, 126 + y, 2, 2, pal.HAIR)
        if bare:
            self._rect(img, x - 20, 171 + y, x + 20, 180 + y, pal.MASK)  # pulled down to the chin
        else:
            self._rect(img, x - 25, 131 + y, x + 25, 168 + y, pal.MASK)
            for my in (142, 151, 160):  # pleats
                self._line(img, (x - 19, my + y), (x + 19, my + y), pal.STEEL, 1)

    def _arm(self, img: Frame, shoulder: tuple[float, float], hand: tuple[float, float]) -> None:
        self._line(img, shoulder, hand, pal.STEEL, 18)  # outline, then sleeve
        self._line(img, shoulder, hand, pal.UNIFORM, 14)
        self._ellipse(img, *hand, 8, 8, pal.MASK)  # blue nitrile gloves: no bare skin on the hands

    def _draw_rat(self, img: Frame, e: ScriptedEvent, t: float) -> None:
        # Left to right, in full view from the event's first frame to its last, so that `active`
        # is exact ground truth for the marker.
        f = (self.local_time(t) - e.start_s) / (e.end_s - e.start_s)
        x = 40 + f * (640 - 100)
        y = 395 + 60 * e.position + 2 * math.sin(t * 20)
        wag = 6 * math.sin(t * 9)
        tail = [(x - 34 - 10 * k, y + 4 + wag * math.sin(k)) for k in range(7)]
        cv2.polylines(img, [np.array([self._p(*p) for p in tail], np.int32)], False, pal.RAT_FUR, self._n(3))
        stride = 5 * math.sin(t * 25)
        for lx in (-20 + stride, 18 - stride):
            self._line(img, (x + lx, y + 14), (x + lx + 3, y + 27), pal.RAT_FUR, 4)
        self._ellipse(img, x, y, 38, 23, pal.RAT_FUR)  # 76x46: a 39 px square fits inside
        self._ellipse(img, x + 42, y + 4, 16, 12, pal.RAT_FUR)
        self._ellipse(img, x + 34, y - 16, 6, 6, pal.RAT_FUR)
        self._ellipse(img, x + 47, y, 2, 2, pal.HAIR)
        self._ellipse(img, x + 57, y + 6, 2, 2, pal.HAIR)

    def _draw_elsewhere(self) -> Frame:
        """Where a knocked camera ends up: a ceiling corner with a vent and a conduit."""
        img = np.full((self.height, self.width, 3), pal.COUNTER, np.uint8)  # the shaded wall
        self._poly(img, [(0, 0), (400, 0), (412, 480), (0, 480)], pal.WALL)
        self._poly(img, [(0, 0), (640, 0), (640, 150), (406, 230), (0, 170)], pal.UNIFORM)  # ceiling
        self._line(img, (406, 230), (412, 480), pal.TILE_LINE, 2)
        self._rect(img, 120, 40, 300, 90, pal.STEEL)  # a ceiling light
        self._rect(img, 128, 48, 292, 82, pal.HAT)
        self._rect(img, 470, 260, 590, 340, pal.STEEL)  # an air vent
        for y in range(270, 335, 10):
            self._line(img, (478, y), (582, y), pal.TILE_LINE, 2)
        self._line(img, (0, 300), (406, 360), pal.STEEL, 10)  # a conduit along the wall
        return img


def has_solid_area(
    frame: Frame, colour: Colour, width: int = pal.MIN_MARKER_PX, height: int | None = None, tol: int = 12
) -> bool:
    """Whether `colour` (± `tol` per channel) fills a width x height rectangle somewhere in the
    frame: the palette's marker rule made checkable. The tolerance covers the sensor noise and is
    far inside MIN_DISTANCE (0.25 Euclidean needs one channel >= 37 away)."""
    lo = np.clip(np.array(colour) - tol, 0, 255).astype(np.uint8)
    hi = np.clip(np.array(colour) + tol, 0, 255).astype(np.uint8)
    inside = cv2.inRange(frame, lo, hi)
    kernel = np.ones((height or width, width), np.uint8)
    return bool(cv2.erode(inside, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).any())


def write_video(
    scene: KitchenScene,
    path: str | os.PathLike[str],
    seconds: float,
    fps: float = 5.0,
    *,
    start_s: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Renders `seconds` of the scene into a video file (.avi: MJPG, .mp4: mp4v); returns the
    number of frames written. `progress(done, total)` is called after each frame."""
    path = os.fspath(path)
    fourcc = cv2.VideoWriter.fourcc(*("mp4v" if path.lower().endswith(".mp4") else "MJPG"))
    writer = cv2.VideoWriter(path, fourcc, fps, (scene.width, scene.height))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    total = round(seconds * fps)
    try:
        for i in range(total):
            writer.write(scene.render(start_s + i / fps))
            if progress:
                progress(i + 1, total)
    finally:
        writer.release()
    return total


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m simulators.camera --serve [--port 8554]` or `--write out.avi --seconds 30`."""
    parser = argparse.ArgumentParser(description="The simulated kitchen camera (the demo script).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--serve", action="store_true", help="serve an MJPEG stream over HTTP")
    action.add_argument("--write", metavar="PATH", help="write a video file (.avi or .mp4)")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seconds", type=float, default=DEMO_LOOP_S)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=1.0, help="scene seconds per wall second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scene = KitchenScene(DEMO_SCRIPT, seed=args.seed, loop_s=DEMO_LOOP_S)
    if args.write:
        n = write_video(scene, args.write, args.seconds, args.fps)
        print(f"wrote {n} frames to {args.write}")
        return
    from simulators.mjpeg import MjpegServer  # only the server mode needs it

    with MjpegServer(scene, host=args.host, port=args.port, fps=args.fps, speed=args.speed) as server:
        print(f"streaming {server.url} (snapshot: {server.snapshot_url}); Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
