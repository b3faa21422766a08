"""What camera ingest keeps per camera: its motion gate and tamper detector, its counters, and
whether it is online. Frames of one camera arrive on one thread (its reader) or, for a pushed
camera, from concurrent HTTP requests: the lock keeps the gate and detector consistent."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ingest.camera.gate import GateDecision, MotionGate, frame_features
from ingest.camera.ring import FrameRing, PacketRing
from ingest.camera.tamper import TamperDetector, TamperState
from vigil import metrics
from vigil.cameras import Camera

# The process-wide frame counters (all cameras together; per camera see FrameCounters), bound to
# their label once: a frame costs milliseconds of decoding, an increment about a microsecond.
_GATED = metrics.camera_frames.labels("gated")
_PASSED = metrics.camera_frames.labels("passed")
_DROPPED = metrics.camera_frames.labels("dropped")
_TOO_LARGE = metrics.camera_frames.labels("too_large")
# Counted by the service when Kafka acknowledges the frame.
SENT_FRAMES = metrics.camera_frames.labels("sent")


@dataclass(slots=True)
class FrameCounters:
    """Per-camera frame outcomes, as exposed on /metrics."""

    analysed: int = 0
    sent: int = 0
    gated: int = 0  # static: not sent, by design
    keyframes: int = 0  # sent although static, to keep the detector's view current
    dropped: int = 0  # shed because Kafka could not take them fast enough
    too_large: int = 0  # over frame_max_bytes: dead-lettered


class CameraChannel:
    def __init__(
        self,
        camera: Camera,
        *,
        keyframe_interval_s: float,
        tamper_hold_s: float,
        ring: FrameRing | PacketRing | None = None,
    ) -> None:
        self.camera = camera
        # The camera's recent past for event clips, gated frames included: a pulled camera's stream
        # packets, a pushed camera's JPEGs (ingest/camera/ring.py; None: clips are off).
        self.ring = ring
        self.counters = FrameCounters()
        self._gate = MotionGate(keyframe_interval_ms=int(keyframe_interval_s * 1000))
        hold_ms = int(tamper_hold_s * 1000)
        self._tamper = TamperDetector(raise_after_ms=hold_ms, clear_after_ms=hold_ms)
        self._lock = threading.Lock()
        self._seq = 0
        self.tamper_state: TamperState | None = None
        # Offline tracking, read by the service's health check (on the event loop).
        self.created_at = time.time()
        self.last_frame_at = 0.0
        self.offline_since_ms: int | None = None

    def analyse(self, frame: np.ndarray, ts_ms: int) -> tuple[GateDecision, TamperState, int]:
        """Gate and tamper-check one frame; returns the gate's decision, the tamper state and the
        frame's sequence number (meaningful when it is sent)."""
        thumb, sharp = frame_features(frame)  # one grey conversion and downscale for both checks
        with self._lock:
            decision = self._gate.check(thumb, ts_ms)
            state = self._tamper.update(thumb, sharp, ts_ms)
            self.tamper_state = state
            self.counters.analysed += 1
            if decision.send:
                self.counters.sent += 1
                _PASSED.inc()
                if decision.reason == "keyframe":
                    self.counters.keyframes += 1
                    metrics.camera_keyframes.inc()
            else:
                self.counters.gated += 1
                _GATED.inc()
            seq = self._seq
            if decision.send:
                self._seq += 1
            self.last_frame_at = time.time()
        return decision, state, seq

    def unsend(self, *, too_large: bool) -> None:
        """A frame the gate passed was not sent after all (shed, or too large)."""
        with self._lock:
            self.counters.sent -= 1
            if too_large:
                self.counters.too_large += 1
                _TOO_LARGE.inc()
            else:
                self.counters.dropped += 1
                _DROPPED.inc()
