"""A camera that shows real photos: the demo's kitchen cameras when the trained kitchen model runs.

The cartoon `KitchenScene` is drawn for the simulator's colour-marker model; a model trained on
photographs sees nothing in it. This scene cycles through the photos bundled in
`simulators/photos/` (held-out photos the kitchen model never trained on; see ATTRIBUTION.md),
each held for a few seconds and letterboxed into the camera's frame size, so the demo shows the
real model raising (and not raising) alerts on real faces and cigarettes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

HOLD_S = 6.0  # seconds per photo: longer than the motion gate's keyframe interval (so each is sent)
FRAME_SIZE = (640, 480)  # width, height: what the demo's MJPEG cameras serve


def bundled_photos() -> list[Path]:
    folder = Path(str(resources.files("simulators") / "photos"))
    photos = sorted(folder.glob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"no photos in {folder}")
    return photos


class PhotoScene:
    """`render(t)` gives the photo for scene time t; frames are decoded once and kept."""

    def __init__(self, photos: list[Path] | None = None, *, hold_s: float = HOLD_S, offset: int = 0) -> None:
        self.hold_s = hold_s
        self.offset = offset
        self._frames = [self._fit(path) for path in (photos or bundled_photos())]

    @staticmethod
    def _fit(path: Path) -> NDArray[np.uint8]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        width, height = FRAME_SIZE
        h, w = image.shape[:2]
        r = min(width / w, height / h)
        nw, nh = round(w * r), round(h * r)
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        top, left = (height - nh) // 2, (width - nw) // 2
        frame[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        return frame

    @property
    def photos(self) -> int:
        return len(self._frames)

    def render(self, t: float) -> NDArray[np.uint8]:
        index = (int(max(t, 0.0) // self.hold_s) + self.offset) % len(self._frames)
        return self._frames[index].copy()  # the server may draw on or encode it in another thread
