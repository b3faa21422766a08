"""Pulling frames from one camera: an OpenCV capture on its own thread, sampled at the camera's
rate, reconnected with backoff when the stream drops, looped when the source is a video file.

Capture is blocking C code (network reads, decoding), so each camera gets a thread; OpenCV
releases the GIL while it decodes, so threads overlap. What happens to a sampled frame (gating,
tamper checks, encoding, the hand-off to Kafka) is the `on_frame` callback's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil.cameras import Camera

log = logging.getLogger(__name__)

# Reconnect backoff: first retry soon (a blip), then doubling to a ceiling that still notices a
# camera coming back within half a minute without hammering a dead host.
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
# FFmpeg's own open and read time-outs; without them a dead RTSP host blocks a read for minutes.
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
# A video file that reports no frame rate is paced as if it were 25 fps.
DEFAULT_FILE_FPS = 25.0

FrameCallback = Callable[[Camera, np.ndarray, int], object]  # its result is not used


@dataclass(slots=True)
class ReaderStats:
    """Counters a reader thread writes and the service reads (single ints: GIL-atomic)."""

    connects: int = 0
    disconnects: int = 0
    sampled: int = 0
    last_frame_at: float = field(default=0.0)  # time.time() of the last sampled frame
    last_error: str = ""


class CameraReader:
    def __init__(self, camera: Camera, on_frame: FrameCallback) -> None:
        self.camera = camera
        self._on_frame = on_frame
        self._stop = threading.Event()
        self.stats = ReaderStats()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the thread to end and wait for it; a read blocked in FFmpeg ends at its time-out."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.stats.connects += 1
            try:
                if self._pump(capture):
                    backoff = BACKOFF_MIN_S  # it delivered frames: the next drop is a fresh blip
            except Exception as exc:  # a bug in a callback must not end the camera for good
                log.exception("camera %s: frame handling failed", self.camera.camera_id)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                capture.release()
            if not self._stop.is_set():
                self.stats.disconnects += 1
                log.warning("camera %s: stream ended; reconnecting in %.1fs", self.camera.camera_id, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _open(self) -> cv2.VideoCapture | None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            READ_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(self.camera.source, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            self.stats.last_error = f"cannot open {self._redacted_source()}"
            log.warning("camera %s: %s", self.camera.camera_id, self.stats.last_error)
            return None
        return capture

    def _redacted_source(self) -> str:
        # RTSP URLs often carry credentials; logs and counters must not.
        source = self.camera.source
        if "@" in source and "://" in source:
            scheme, rest = source.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return source

    def _pump(self, capture: cv2.VideoCapture) -> bool:
        """Read until the stream ends or we are stopped; True if any frame was delivered."""
        period = 1.0 / self.camera.sample_fps
        is_file = self.camera.is_file
        file_period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FILE_FPS) if is_file else 0.0
        next_sample = time.monotonic()
        next_file_frame = time.monotonic()
        delivered = False
        rewinds_without_frames = 0
        while not self._stop.is_set():
            if is_file:
                # A file is played at its own speed, as a live camera would deliver it.
                delay = next_file_frame - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                next_file_frame = max(next_file_frame + file_period, time.monotonic() - 1.0)
            if not capture.grab():
                if is_file and rewinds_without_frames < 2:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the demo video
                    rewinds_without_frames += 1
                    continue
                return delivered
            now = time.monotonic()
            if now < next_sample:
                continue  # grabbed (to keep the stream current) but not decoded: not sampled
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                return delivered
            rewinds_without_frames = 0
            # Keep to the schedule, but never try to catch up a backlog after a stall.
            next_sample = max(next_sample + period, now)
            self.stats.sampled += 1
            self.stats.last_frame_at = time.time()
            delivered = True
            self._on_frame(self.camera, frame, time.time_ns() // 1_000_000)
        return delivered
