"""Detections of one image, in the style of Roboflow `supervision`: parallel numpy arrays.

Arrays rather than a list of box objects because everything downstream (zone tests, per-code
filtering, drawing) is vectorised, and a frame with hundreds of candidates must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """Boxes found in one image.

    - `xyxy`: float32 (N, 4), x1, y1, x2, y2 in pixels of the ORIGINAL image (not the model input);
    - `confidence`: float32 (N,), the class score in 0..1;
    - `class_id`: int32 (N,), an index into the model manifest's `classes`.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        # Coerce dtypes once here so consumers can rely on them; frozen, hence object.__setattr__.
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        confidence = np.asarray(self.confidence, dtype=np.float32)
        class_id = np.asarray(self.class_id)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        if confidence.ndim != 1:
            raise ValueError(f"confidence must have shape (N,), got {confidence.shape}")
        if class_id.ndim != 1:
            raise ValueError(f"class_id must have shape (N,), got {class_id.shape}")
        if class_id.size and not np.issubdtype(class_id.dtype, np.integer):
            raise ValueError(f"class_id must hold integers, got dtype {class_id.dtype}")
        n = xyxy.shape[0]
        if confidence.shape[0] != n or class_id.shape[0] != n:
            raise ValueError(
                f"lengths disagree: xyxy has {n} rows, confidence {confidence.shape[0]}, "
                f"class_id {class_id.shape[0]}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id.astype(np.int32, copy=False))

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def filter(self, mask: np.ndarray) -> Detections:
        """The detections selected by a boolean mask (N,) or an integer index array."""
        mask = np.asarray(mask)
        if mask.dtype == np.bool_ and mask.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {mask.shape}")
        return Detections(self.xyxy[mask], self.confidence[mask], self.class_id[mask])
