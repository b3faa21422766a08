"""JPEG decoding sized for the model: libjpeg can decode at 1/2, 1/4 or 1/8 scale in the DCT
domain, far cheaper than a full decode followed by a resize. When the model's letterbox would
shrink a frame by at least that factor anyway, the reduced decode loses nothing the model sees."""

from __future__ import annotations

import struct

import cv2
import numpy as np

# Start-of-frame markers that carry the image size (baseline, extended, progressive, lossless...).
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG's start-of-frame header, or None if it has none we can read."""
    i = 2  # after SOI
    n = len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", data, i + 5)
            return (width, height) if width and height else None
        i += 2 + length
    return None


def decode_for_model(data: bytes, input_size: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """Decode at the largest power-of-two reduction that stays at or above what the letterbox
    keeps; returns the image (None if it does not decode) and the reduction factor."""
    size = jpeg_size(data)
    factor = 1
    if size is not None:
        shrink = min(input_size[0] / size[0], input_size[1] / size[1])
        for candidate in (8, 4, 2):
            if shrink * candidate <= 1.0:
                factor = candidate
                break
    flag = _REDUCED.get(factor, cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    return (None if image is None else np.asarray(image)), factor
