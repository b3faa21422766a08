"""Synthetic camera frames for the gate and tamper tests, drawn with plain cv2 (no simulator).

`Room` is a wide kitchen panorama: a tiled wall, cabinets, a counter, pots and shelves, with
random colours and positions from a seed. A camera sees a 640x480 window of it (`Room.view`);
turning the camera away moves that window. Every frame gets fresh sensor noise, as a real one has.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Frame = NDArray[np.uint8]
W, H = 640, 480


class Room:
    """A 1600x480 kitchen panorama; `view(x)` is what a 640x480 camera panned to `x` sees."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        width = 1600
        # Wall: a vertical light gradient, tiled with grout lines.
        wall = np.linspace(150, 200, H, dtype=np.float32)[:, None, None] * np.array([1.0, 0.97, 0.9])
        img = np.broadcast_to(wall, (H, width, 3)).astype(np.uint8).copy()
        for y in range(0, 260, 24):
            cv2.line(img, (0, y), (width, y), (120, 120, 115), 1)
        for x in range(0, width, 32):
            cv2.line(img, (x, 0), (x, 260), (120, 120, 115), 1)
        # Cabinets and shelves of random colours, with handles.
        x = 0
        while x < width:
            w = int(rng.integers(90, 200))
            colour = tuple(int(c) for c in rng.integers(40, 220, 3))
            cv2.rectangle(img, (x + 4, 20), (x + w - 4, 140), colour, -1)
            cv2.line(img, (x + w // 2, 60), (x + w // 2, 100), (30, 30, 30), 3)
            x += w
        # Counter, and pots and bottles of random sizes on it.
        cv2.rectangle(img, (0, 260), (width, 300), (90, 90, 100), -1)
        cv2.rectangle(img, (0, 300), (width, H), (60, 70, 80), -1)
        for _ in range(40):
            cx, r = int(rng.integers(0, width)), int(rng.integers(12, 40))
            colour = tuple(int(c) for c in rng.integers(20, 240, 3))
            cv2.circle(img, (cx, 260 - r // 2), r, colour, -1)
            cv2.rectangle(img, (cx - 6, 150), (cx + 6, 150 + r), colour, -1)
        # Floor: mats, drains and crates, scattered.
        for _ in range(30):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(300, H))
            w, h = int(rng.integers(20, 120)), int(rng.integers(10, 80))
            colour = tuple(int(c) for c in rng.integers(20, 160, 3))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, -1)
        # Shelves, hoods and pipes at random heights on the wall.
        for _ in range(25):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, 250))
            colour = tuple(int(c) for c in rng.integers(30, 230, 3))
            cv2.line(img, (x0, y0), (x0 + int(rng.integers(30, 200)), y0), colour, int(rng.integers(2, 8)))
        self.panorama = img
        self._frames = 0

    def view(self, x: int = 0) -> Frame:
        """The 640x480 window at horizontal offset `x`, with fresh sensor noise."""
        self._frames += 1
        return add_noise(self.panorama[:, x : x + W], self._frames)


# A bank of noise fields (as saturating +/- uint8 pairs, so adding one costs ~0.1 ms instead of the
# ~3 ms of drawing fresh noise): consecutive frames never repeat, which is what a sensor guarantees.
_BANK_RNG = np.random.default_rng(12345)
_NOISE = [_BANK_RNG.integers(-3, 4, (H, W, 3)) for _ in range(16)]
_NOISE_BANK = [(np.clip(n, 0, None).astype(np.uint8), np.clip(-n, 0, None).astype(np.uint8)) for n in _NOISE]


def add_noise(frame: Frame, n: int) -> Frame:
    """The frame (640x480 BGR) with noise field `n` (any int; consecutive ones differ) of ±3 grey
    levels per channel, like a sensor's (and about what JPEG leaves)."""
    plus, minus = _NOISE_BANK[n % len(_NOISE_BANK)]
    return np.asarray(cv2.subtract(cv2.add(frame, plus), minus), dtype=np.uint8)


def person(frame: Frame, x: int, y: int = 120, w: int = 160, h: int = 360) -> Frame:
    """The frame with a person-size figure (white coat, dark trousers, a head) at (x, y)."""
    out = frame.copy()
    cv2.rectangle(out, (x, y + h // 5), (x + w, y + 3 * h // 5), (235, 235, 240), -1)  # coat
    cv2.rectangle(out, (x + w // 6, y + 3 * h // 5), (x + 5 * w // 6, y + h), (40, 40, 50), -1)
    cv2.circle(out, (x + w // 2, y + h // 10), w // 4, (140, 170, 210), -1)  # face
    cv2.line(out, (x + w // 2, y + h // 5), (x + w // 2, y + 3 * h // 5), (200, 200, 205), 2)
    return out
