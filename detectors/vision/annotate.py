"""The evidence snapshot: the frame with the boxes that made the finding drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from detectors.vision.detections import Detections

# Red boxes, thick enough to see on a phone screen, labels on a filled band so they stay legible
# on any background.
BOX_COLOUR = (0, 0, 255)
TEXT_COLOUR = (255, 255, 255)
EVIDENCE_JPEG_QUALITY = 90  # evidence is kept for years and may be printed: favour detail


def annotate(frame: np.ndarray, detections: Detections, labels: list[str]) -> bytes:
    canvas = frame.copy()
    thickness = max(2, round(min(canvas.shape[:2]) / 240))
    for (x1, y1, x2, y2), score, label in zip(
        detections.xyxy.round().astype(int), detections.confidence, labels, strict=True
    ):
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), BOX_COLOUR, thickness)
        text = f"{label} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, int(y1) - th - base - 2)
        cv2.rectangle(canvas, (int(x1), top), (int(x1) + tw + 4, top + th + base + 2), BOX_COLOUR, -1)
        cv2.putText(canvas, text, (int(x1) + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT_COLOUR, 1)
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, EVIDENCE_JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding of the evidence snapshot failed")
    return buf.tobytes()
