"""Detector backends: the plugin base class, the registry, and the built-in backends.

Importing this package registers the built-ins, so `load_backend(manifest)` finds them.
"""

from detectors.vision.backends.base import (
    BACKENDS,
    DetectorBackend,
    PreparedBatch,
    load_backend,
    register_backend,
)
from detectors.vision.backends.yolo import YoloOnnxBackend

__all__ = [
    "BACKENDS",
    "DetectorBackend",
    "PreparedBatch",
    "YoloOnnxBackend",
    "load_backend",
    "register_backend",
]
