"""Live view, camera ingest's side: frames flow only while someone watches.

The API publishes a lease on `vigil.live-watch.v1` for each viewer, renewed every few seconds
(api/live.py). Every camera ingest reads them (no consumer group: a handful of messages a second
at most) and keeps the leases of the cameras it has; while one holds, every sampled frame of that
camera (gated or not: a live view shows a static kitchen too) goes on `vigil.live.v1`, keyed by
camera id. A viewer that goes away ends its lease at once, or it lapses within LEASE bounds; then
nothing is published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.camera.channel import CameraChannel
from vigil import metrics, topics
from vigil.errors import InvalidMessage
from vigil.events import decode_live_watch
from vigil.kafka import now_ms, start_tail

log = logging.getLogger(__name__)

# A lease further ahead than this is cut to it, whoever wrote it: the API renews every few
# seconds with a 10 s lease, so 30 s leaves room and bounds a stray message's effect.
MAX_LEASE_MS = 30_000
# Watchers kept per camera: an operator room and a few enterprise staff watch one kitchen at most;
# the bound keeps a flood of leases from growing memory (a lease beyond it is ignored).
MAX_WATCHERS_PER_CAMERA = 64
# Live frames waiting for Kafka, all cameras together: a second of 30 cameras at 2 fps. Beyond it
# a frame is dropped (counted): a viewer skips a frame rather than the camera falling behind.
LIVE_QUEUE = 64

_SENT = metrics.camera_live_frames.labels("sent")
_DROPPED = metrics.camera_live_frames.labels("dropped")


class LiveFeeds:
    def __init__(
        self, bootstrap: str, channels: Mapping[str, CameraChannel], producer: AIOKafkaProducer
    ) -> None:
        self._bootstrap, self._channels, self._producer = bootstrap, channels, producer
        self._consumer: AIOKafkaConsumer | None = None
        # camera id -> watcher -> lease end (epoch ms); read by reader threads (a dict read under
        # the GIL), written on the event loop only.
        self._leases: dict[str, dict[str, int]] = {}
        self._queue: asyncio.Queue[tuple[str, int, bytes]] = asyncio.Queue(LIVE_QUEUE)
        self.published = 0
        self.dropped = 0

    async def start(self) -> None:
        """Assign every partition of the watch topic at its end before returning."""
        self._consumer = await start_tail(self._bootstrap, topics.LIVE_WATCH, client_id="camera-ingest-live")

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def watched(self, camera_id: str) -> bool:
        """Whether a lease on the camera holds now (called on reader threads for every frame)."""
        leases = self._leases.get(camera_id)
        if not leases:
            return False
        now = now_ms()
        return any(until > now for until in list(leases.values()))

    def offer(self, camera_id: str, ts_ms: int, jpeg: bytes) -> None:
        """On the event loop: queue a live frame, or drop it when the queue is full."""
        try:
            self._queue.put_nowait((camera_id, ts_ms, jpeg))
        except asyncio.QueueFull:
            self.dropped += 1
            _DROPPED.inc()

    async def run_watches(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                watch = decode_live_watch(record.value or b"")
            except InvalidMessage as exc:
                log.warning("live watch %s@%d refused: %s", record.topic, record.offset, exc)
                continue
            channel = self._channels.get(watch.camera_id)
            if channel is None or channel.camera.enterprise_id != watch.enterprise_id:
                continue  # not a camera of this instance
            leases = self._leases.setdefault(watch.camera_id, {})
            if watch.until == 0:
                leases.pop(watch.watcher, None)
            elif watch.watcher in leases or len(leases) < MAX_WATCHERS_PER_CAMERA:
                leases[watch.watcher] = min(watch.until, now_ms() + MAX_LEASE_MS)
            self._prune()

    def _prune(self) -> None:
        now = now_ms()
        for camera_id in list(self._leases):
            live = {w: until for w, until in self._leases[camera_id].items() if until > now}
            if live:
                self._leases[camera_id] = live
            else:
                del self._leases[camera_id]
        metrics.camera_live_watched.set(len(self._leases))

    async def run_sender(self) -> None:
        last_prune = time.monotonic()
        while True:
            camera_id, ts_ms, jpeg = await self._queue.get()
            headers = [("camera_id", camera_id.encode()), ("ts", str(ts_ms).encode())]
            try:
                await self._producer.send(topics.LIVE_FRAMES, jpeg, key=camera_id.encode(), headers=headers)
            except KafkaError as exc:
                self.dropped += 1
                _DROPPED.inc()
                log.debug("live frame of %s dropped: %s", camera_id, exc)
                continue
            self.published += 1
            _SENT.inc()
            # Lapsed leases go even when no watch message arrives (the viewers went away).
            if time.monotonic() - last_prune > 1.0:
                self._prune()
                last_prune = time.monotonic()
