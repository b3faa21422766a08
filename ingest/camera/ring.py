"""A camera's recent past, for event clips (ingest/camera/clips.py), bounded by age, count and
bytes, whichever is reached first, so a camera with huge frames or a high rate cannot grow it
without limit.

Two kinds, by where the camera's pictures come from:

- `PacketRing`, for cameras camera ingest pulls (RTSP, HTTP MJPEG, files): the stream's own
  compressed packets as they arrive, so keeping them costs a copy of bytes already read, and
  decoding and encoding happen only when a clip is asked for (as NVRs keep their recordings). It
  drops whole groups of pictures: a clip always starts at a keyframe it can decode from.
- `FrameRing`, for pushed cameras (edge boxes): the JPEG each push carried, as sent.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


class FrameRing:
    def __init__(self, *, max_age_ms: int, max_frames: int, max_bytes: int) -> None:
        self.max_age_ms, self.max_frames, self.max_bytes = max_age_ms, max_frames, max_bytes
        self._frames: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        # Appended by push handlers, read by the clip encoder.
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


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What a decoder needs besides the packets: the codec and its setup bytes (H.264's SPS and
    PPS in `extradata`, for instance), as the camera's stream announced them."""

    codec: str
    width: int
    height: int
    extradata: bytes
    ms_per_tick: float = 0.0  # the stream's time base in milliseconds (0: unknown)


@dataclass(frozen=True, slots=True)
class Packet:
    ts_ms: int  # when camera ingest read it (the camera's clock is not trusted, as for frames)
    data: bytes
    keyframe: bool
    pts: int | None = None  # the stream's presentation stamp (see PictureClock)


@dataclass(frozen=True, slots=True)
class PacketWindow:
    """A clip's packets: from the last keyframe at or before the window's start (so the first
    picture can be decoded) to the last packet within it, with their stream's format."""

    format: StreamFormat
    packets: tuple[Packet, ...]
    start_ms: int
    end_ms: int

    def stamps(self) -> list[int]:
        """The times of the packets inside the window (not the lead-in from the keyframe)."""
        return [p.ts_ms for p in self.packets if self.start_ms <= p.ts_ms <= self.end_ms]


class PacketRing:
    """`min_interval_ms`: for a stream of keyframes only (MJPEG: every picture a JPEG), a picture
    is kept only this long after the last kept one (the camera's sampling interval), so a 25-fps
    MJPEG camera keeps what a clip at the sampling rate shows, not 25 JPEGs a second. A stream
    with predicted pictures keeps every packet: they all decode the next."""

    def __init__(
        self, *, max_age_ms: int, max_packets: int, max_bytes: int, min_interval_ms: int = 0
    ) -> None:
        self.max_age_ms, self.max_packets, self.max_bytes = max_age_ms, max_packets, max_bytes
        self.min_interval_ms = min_interval_ms
        self._intra_only = True  # until the stream shows a predicted picture
        self._packets: deque[Packet] = deque()
        self._keys: deque[int] = deque()  # the keyframes' times, so a group's end is found at once
        self._bytes = 0
        self._format: StreamFormat | None = None
        self._need_key = True  # until a keyframe starts the run (after a reconnect, or emptied)
        # Appended by the camera's reader thread, read by the clip encoder.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(
        self, fmt: StreamFormat, ts_ms: int, data: bytes, keyframe: bool, pts: int | None = None
    ) -> None:
        with self._lock:
            packets = self._packets
            if fmt is not self._format:  # a new connection: its packets start a new run
                if fmt != self._format:  # another codec or size: the old packets cannot share a clip
                    packets.clear()
                    self._keys.clear()
                    self._bytes = 0
                    self._intra_only = True
                self._format = fmt
                self._need_key = True
            if not keyframe:
                self._intra_only = False
            elif self._intra_only and packets and ts_ms - packets[-1].ts_ms < self.min_interval_ms:
                return  # a picture of an intra-only stream between two samples: not needed
            if self._need_key:
                if not keyframe:
                    return  # nothing decodes before a run's first keyframe
                self._need_key = False
            if packets and ts_ms < packets[-1].ts_ms:
                ts_ms = packets[-1].ts_ms  # the wall clock stepped back: keep the order
            packets.append(Packet(ts_ms, data, keyframe, pts))
            self._bytes += len(data)
            if keyframe:
                self._keys.append(ts_ms)
            self._evict(ts_ms - self.max_age_ms)

    def _evict(self, oldest: int) -> None:
        """Drops the oldest group of pictures (a keyframe and the packets that need it) while the
        packet or byte bound is passed, or while the next group already starts before `oldest` (a
        group reaching into the kept time stays: its later pictures need its keyframe). A group is
        kept whole or not at all. Held under the lock."""
        packets, keys = self._packets, self._keys
        while packets:
            over = len(packets) > self.max_packets or self._bytes > self.max_bytes
            if not over and (len(keys) < 2 or keys[1] > oldest):
                return
            keys.popleft()
            self._bytes -= len(packets.popleft().data)
            while packets and not packets[0].keyframe:
                self._bytes -= len(packets.popleft().data)
            if not packets:
                self._need_key = True

    def window(self, start_ms: int, end_ms: int) -> PacketWindow | None:
        """The packets a clip of [start_ms, end_ms] decodes, or None when none lie in the window."""
        with self._lock:
            if self._format is None:
                return None
            chosen: list[Packet] = []
            for packet in self._packets:
                if packet.ts_ms > end_ms:
                    break
                if packet.keyframe and packet.ts_ms <= start_ms:
                    chosen.clear()  # a later keyframe still before the window: start there
                chosen.append(packet)
            if not any(start_ms <= p.ts_ms for p in chosen):
                return None
            return PacketWindow(self._format, tuple(chosen), start_ms, end_ms)

    def last_ts(self) -> int | None:
        with self._lock:
            return self._packets[-1].ts_ms if self._packets else None


class PictureClock:
    """When each decoded picture was taken, in camera ingest's milliseconds: the arrival time of
    its group's keyframe plus the stream's own presentation time since that keyframe. With
    B-frames the decoder returns pictures out of arrival order, so a packet's arrival time is not
    its picture's; and a server that sends a burst on connecting delivers pictures faster than
    they were taken. Re-anchored at every keyframe, so the camera's clock never drifts far from
    ours. A picture is never stamped later than now (the packet being decoded)."""

    def __init__(self, ms_per_tick: float) -> None:
        self._ms_per_tick = ms_per_tick
        self._anchor: tuple[int, int] | None = None  # (pts, arrival ms) of the last keyframe

    def packet(self, ts_ms: int, keyframe: bool, pts: int | None) -> None:
        if keyframe and pts is not None and self._ms_per_tick:
            self._anchor = (pts, ts_ms)

    def picture(self, pts: int | None, now_ms: int) -> int:
        if pts is None or self._anchor is None:
            return now_ms
        key_pts, key_ts = self._anchor
        return min(now_ms, key_ts + round((pts - key_pts) * self._ms_per_tick))
