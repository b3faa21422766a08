"""The detector backend contract and the plugin registry.

One small base class, in the spirit of Frigate's detector plugins: a backend turns BGR frames
into `Detections`, and the manifest's `type` picks which backend runs a model. The work is split
into three steps so the service can overlap them (decode JPEGs and `prepare` the next batch while
the current one is in `infer`) and so a benchmark can time the raw model apart from the pre- and
post-processing:

    prepare(images) -> PreparedBatch   # letterbox into the input tensor (CPU, numpy/OpenCV)
    infer(prepared) -> outputs         # exactly one inference-session run
    decode(outputs, prepared)          # thresholds, NMS, back to original pixels

Backends are not thread-safe: one backend per worker thread.

Third-party backends register with `@register_backend`, or ship as an installed package that
exposes an entry point in the `vigil.detector_backends` group (loaded on first miss).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar

import numpy as np

from detectors.vision.detections import Detections
from detectors.vision.manifest import ModelManifest
from vigil.errors import ConfigurationError

ENTRY_POINT_GROUP = "vigil.detector_backends"


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch ready for the model, and what is needed to map boxes back to the originals.

    `tensor` may be a view into a buffer the backend reuses: it stays valid for the next
    `prepare` call too (backends double-buffer so that one batch can be prepared while the
    previous one is inferred), but not beyond that.
    """

    tensor: np.ndarray  # (B, 3, H, W) float32; B >= count when the model's batch size is static
    count: int  # how many of the B rows are real images
    scale: np.ndarray  # (count, 2) float32: resize factor along x and y
    pad: np.ndarray  # (count, 2) float32: left and top padding, in input pixels
    sizes: np.ndarray  # (count, 2) int32: width and height of each original image


class DetectorBackend(abc.ABC):
    """Runs one model described by a manifest. Subclasses set `type` and the three steps."""

    type: ClassVar[str]

    def __init__(
        self,
        manifest: ModelManifest,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
        max_batch: int = 8,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if intra_op_threads is not None and intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be at least 1, got {intra_op_threads}")
        self.manifest = manifest
        self.providers = tuple(providers) if providers else ("CPUExecutionProvider",)
        self.intra_op_threads = intra_op_threads
        self.max_batch = max_batch

    @property
    def batch_size(self) -> int:
        """How many images one `prepare`/`infer` takes; `detect` splits longer lists."""
        return self.max_batch

    @abc.abstractmethod
    def prepare(self, images: Sequence[np.ndarray]) -> PreparedBatch:
        """Letterbox up to `batch_size` BGR uint8 (H, W, 3) images of any sizes."""

    @abc.abstractmethod
    def infer(self, prepared: PreparedBatch) -> list[np.ndarray]:
        """The raw model outputs for one prepared batch."""

    @abc.abstractmethod
    def decode(self, outputs: list[np.ndarray], prepared: PreparedBatch) -> list[Detections]:
        """One `Detections` per real image of the batch, in original-image pixels."""

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detections for each image, in order; any number of images, of any sizes."""
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            prepared = self.prepare(images[start : start + self.batch_size])
            results += self.decode(self.infer(prepared), prepared)
        return results

    def close(self) -> None:  # noqa: B027 - a hook: backends without resources need not override
        """Release the model session; the backend cannot infer afterwards."""

    def __enter__(self) -> DetectorBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: dict[str, type[DetectorBackend]] = {}

_B = TypeVar("_B", bound=type[DetectorBackend])


def register_backend(cls: _B) -> _B:
    """Class decorator: make a backend available under its `type` key."""
    key = getattr(cls, "type", None)
    if not isinstance(key, str) or not key:
        raise TypeError(f"{cls.__name__} must set a non-empty class attribute `type`")
    existing = BACKENDS.get(key)
    if existing is not None and existing is not cls:
        raise ValueError(f"backend type {key!r} is already registered by {existing.__qualname__}")
    BACKENDS[key] = cls
    return cls


def _load_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded: Callable[..., Any] = entry.load()  # importing the module registers the class
        if isinstance(loaded, type) and issubclass(loaded, DetectorBackend) and loaded.type not in BACKENDS:
            register_backend(loaded)


def load_backend(manifest: ModelManifest, **kwargs: Any) -> DetectorBackend:
    """Construct the backend that the manifest's `type` names (a session is loaded and warmed)."""
    if manifest.type not in BACKENDS:
        _load_entry_points()
    cls = BACKENDS.get(manifest.type)
    if cls is None:
        raise ConfigurationError(
            f"model manifest {manifest.manifest_path}: type: unknown backend {manifest.type!r}; "
            f"known types: {', '.join(sorted(BACKENDS)) or 'none'}"
        )
    return cls(manifest, **kwargs)
