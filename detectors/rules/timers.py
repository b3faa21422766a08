"""The engine's timer queue: devices ordered by the ingest-time moment their next timer falls due
(a rule's timer moved onto ingest's clock by the device's offset, or its heartbeat)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

from detectors.rules.state import DeviceState


class TimerQueue:
    """A heap of (due, seq, device). A device counts one entry at a time, the earliest, named by
    `dev.queued`: an entry superseded by an earlier one stays in the heap and is skipped when it
    comes out (cheaper than finding and removing it)."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, DeviceState]] = []
        self._seq = itertools.count()  # ties in due time come out in the order they were queued

    def push(self, dev: DeviceState, key: int) -> None:
        """Queue `dev` at `key` (ingest time), unless it is queued earlier already."""
        if dev.queued is None or key < dev.queued:
            dev.queued = key
            heapq.heappush(self._heap, (key, next(self._seq), dev))

    def due(self, now_ms: int) -> Iterator[DeviceState]:
        """Take out the devices due by `now_ms`, earliest first (`dev.queued` back to None). A
        device pushed again while this runs comes out in the same pass if it is due by then."""
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            key, _, dev = heapq.heappop(heap)
            if dev.queued != key:
                continue  # superseded by an earlier entry
            dev.queued = None
            yield dev
