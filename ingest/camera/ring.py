"""A camera's recent frames: every sampled frame (gated or sent), as the JPEG camera ingest made
of it, for event clips (ingest/camera/clips.py). Bounded by age, count and bytes, whichever is
reached first, so a camera with huge frames or a high rate cannot grow it without limit."""

from __future__ import annotations

import threading
from collections import deque


class FrameRing:
    def __init__(self, *, max_age_ms: int, max_frames: int, max_bytes: int) -> None:
        self.max_age_ms, self.max_frames, self.max_bytes = max_age_ms, max_frames, max_bytes
        self._frames: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        # Appended by the camera's reader thread (or push handlers), read by the clip encoder.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(self, ts_ms: int, jpeg: bytes) -> None:
        if len(jpeg) > self.max_bytes:
            return  # one frame over the whole budget: never kept (the clip shows a gap)
        with self._lock:
            frames = self._frames
            if frames and ts_ms <= frames[-1][0]:
                return  # a pushed frame out of order or repeated: a clip plays forwards only
            frames.append((ts_ms, jpeg))
            self._bytes += len(jpeg)
            oldest = ts_ms - self.max_age_ms
            while frames and (
                len(frames) > self.max_frames or self._bytes > self.max_bytes or frames[0][0] < oldest
            ):
                self._bytes -= len(frames.popleft()[1])

    def window(self, start_ms: int, end_ms: int) -> list[tuple[int, bytes]]:
        """The frames stamped within [start_ms, end_ms], oldest first (a copy of the references)."""
        with self._lock:
            return [(ts, jpeg) for ts, jpeg in self._frames if start_ms <= ts <= end_ms]

    def last_ts(self) -> int | None:
        with self._lock:
            return self._frames[-1][0] if self._frames else None
