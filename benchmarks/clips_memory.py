"""`vigil bench clips`, memory: one camera's ring (ingest/camera/ring.py) at the default settings,
a pulled camera's (its stream's packets) and a pushed camera's (its JPEGs), and the resident memory
of a separate process holding many cameras' rings full.

The process is a child started for the purpose (multiprocessing's spawn: a fresh interpreter,
not a fork sharing the parent's pages), its RSS read from /proc by the parent before and after
it fills the rings, so the figure is what the kernel charges for the frames, allocator overhead
and all, not what Python believes it holds. This module imports little so that the child does
too: its baseline is the interpreter and the ring, nothing of the benchmark.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection

from ingest.camera.ring import FrameRing, PacketRing, StreamFormat

# How long the parent waits for the child at each step: filling 100 cameras' rings copies about
# 350 MiB, a second or two; a minute covers a machine far busier than that.
CHILD_TIMEOUT_S = 60.0
# The rings are filled for twice their age bound, so each has wrapped and evicted as in a camera
# that has run for a while (the allocator's free lists then look like a running service's).
FILL_WINDOWS = 2


@dataclass(frozen=True, slots=True)
class RingBounds:
    max_age_ms: int
    max_frames: int
    max_bytes: int
    fps: float  # the camera's sampling rate: frames arrive this often


@dataclass(frozen=True, slots=True)
class JpegFeed:
    """A pushed camera's ring, fed the JPEGs it would be sent at its sampling rate."""

    bounds: RingBounds
    jpegs: list[bytes]

    @property
    def max_bytes(self) -> int:
        return self.bounds.max_bytes

    def ring(self) -> FrameRing:
        b = self.bounds
        return FrameRing(max_age_ms=b.max_age_ms, max_frames=b.max_frames, max_bytes=b.max_bytes)

    def fill(self, ring: FrameRing | PacketRing, offset: int = 0, *, copy: bool = False) -> None:
        assert isinstance(ring, FrameRing)
        interval_ms = 1000.0 / self.bounds.fps
        count = int(FILL_WINDOWS * self.bounds.max_age_ms / interval_ms) + 1
        for i in range(count):
            jpeg = self.jpegs[(offset + i) % len(self.jpegs)]
            # A camera's ring holds its own frames: each camera encodes its own. A copy per camera
            # (bytes(bytearray(...)) always allocates) keeps shared objects from flattering the RSS.
            ring.append(1_763_000_000_000 + round(i * interval_ms), bytes(bytearray(jpeg)) if copy else jpeg)


@dataclass(frozen=True, slots=True)
class PacketFeed:
    """A pulled camera's ring, fed its stream's packets at the stream's rate, as its reader would."""

    format: StreamFormat
    packets: list[tuple[bytes, bool]]  # (data, keyframe), looped
    fps: float
    max_age_ms: int
    max_packets: int
    max_bytes: int
    min_interval_ms: int

    def ring(self) -> PacketRing:
        return PacketRing(max_age_ms=self.max_age_ms, max_packets=self.max_packets, max_bytes=self.max_bytes,
                          min_interval_ms=self.min_interval_ms)  # fmt: skip

    def fill(self, ring: FrameRing | PacketRing, offset: int = 0, *, copy: bool = False) -> None:
        assert isinstance(ring, PacketRing)
        interval_ms = 1000.0 / self.fps
        count = int(FILL_WINDOWS * self.max_age_ms / interval_ms) + 1
        n = len(self.packets)
        start = (offset * 7) % n  # cameras out of step
        start -= start % max(1, _gop(self.packets))  # on a keyframe, as a stream is joined
        for i in range(count):
            data, key = self.packets[(start + i) % n]
            ts = 1_763_000_000_000 + round(i * interval_ms)
            ring.append(self.format, ts, bytes(bytearray(data)) if copy else data, key)


def _gop(packets: list[tuple[bytes, bool]]) -> int:
    keys = [i for i, (_, key) in enumerate(packets) if key]
    return keys[1] - keys[0] if len(keys) > 1 else len(packets)


RingFeed = JpegFeed | PacketFeed


@dataclass(frozen=True, slots=True)
class RingMemory:
    frames: int  # frames (or packets) one ring holds at steady state
    ring_bytes: int  # the bytes one ring holds at steady state
    bound_bytes: int  # the ring's byte bound (VIGIL_CLIP_BUFFER_MAX_BYTES)
    cameras: int
    rss_before: int  # the child's RSS before and after filling its rings, bytes
    rss_full: int
    held_bytes: int  # the bytes all the child's rings hold

    @property
    def rss_growth(self) -> int:
        return self.rss_full - self.rss_before


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _hold_rings(conn: Connection, feed: RingFeed, cameras: int) -> None:
    """The child: report in, fill one ring per camera, report the bytes held, wait to be measured."""
    conn.send("ready")
    conn.recv()
    rings = [feed.ring() for _ in range(cameras)]
    for i, ring in enumerate(rings):
        feed.fill(ring, offset=i, copy=True)  # cameras out of step: not the same frames
    conn.send(sum(r.nbytes for r in rings))
    conn.recv()  # measured: the rings may go


def _expect(conn: Connection) -> object:
    if not conn.poll(CHILD_TIMEOUT_S):
        raise RuntimeError(f"the ring-holding child did not answer in {CHILD_TIMEOUT_S:.0f} s")
    return conn.recv()


def measure_memory(feed: RingFeed, cameras: int) -> RingMemory:
    one = feed.ring()
    feed.fill(one)
    parent, child_end = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_hold_rings, args=(child_end, feed, cameras), name="vigil-bench-rings", daemon=True
    )
    child.start()
    try:
        _expect(parent)
        assert child.pid is not None
        before = _rss(child.pid)
        parent.send("fill")
        held = _expect(parent)
        assert isinstance(held, int)
        full = _rss(child.pid)
        parent.send("done")
        child.join(CHILD_TIMEOUT_S)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    return RingMemory(len(one), one.nbytes, feed.max_bytes, cameras, before, full, held)


def pid_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (from /proc: no dependency for one number)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's live children (the embedded broker), summed."""
    me, total = os.getpid(), 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                total += pid_cpu_s(int(entry))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return total
