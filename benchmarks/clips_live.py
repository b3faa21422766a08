"""`vigil bench clips`, live view: CPU per delivered frame with 1, 2, 4 watchers of one camera.

The path is production's from the camera ingest's hand-off to the multipart part a viewer's HTTP
response would write, on a real (embedded) Kafka broker: `LiveFeeds` (ingest/camera/live.py)
reads the viewers' leases, is offered each frame as `process_frame` offers it while a lease holds,
and publishes it on `vigil.live.v1`; each watcher is an `api.live.LiveViewer` (its own lease
producer and consumer) iterated through `frames_of`, which makes the MJPEG part. Not included:
the camera's capture, decode and gate (camera ingest does that with or without a viewer), and the
HTTP server writing the parts to a socket (uvicorn's cost, the same for any streamed body).

The CPU counted is this process's (ingest side and every viewer) plus the broker's (a child
process), over the same paced run. The raw limit, measured in the same run on the same broker: a
plain producer sending the same frames and N plain consumers reading the camera's partition with
the viewers' fetch settings: Kafka's own cost of moving the frames to N readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from api.live import POLL_MS, LiveViewer
from benchmarks.clips_memory import children_cpu_s
from ingest.camera.channel import CameraChannel
from ingest.camera.live import LiveFeeds
from vigil.cameras import Camera
from vigil.kafka import client_security, ensure_topics, make_producer, now_ms
from vigil.progress import Progress
from vigil.settings import Settings
from vigil.topics import LIVE_FRAMES

# Frames offered per second: ten 2-fps cameras' worth, so a run of a hundred frames takes seconds,
# and slow enough that LiveFeeds' queue (64 frames) never sheds one (shedding would flatter it).
LIVE_FPS = 20.0
# Frames still in flight when the last one is offered arrive within this; a lost one shows in
# the delivered count instead of stalling the run.
DRAIN_S = 5.0
# A viewer's lease reaches camera ingest through Kafka within this (normally well under a second).
LEASE_WAIT_S = 10.0
# The viewers' own fetch settings (api/live.py): one partition, up to 4 records a fetch, 1 MiB.
FETCH_RECORDS, FETCH_BYTES = 4, 1024 * 1024


@dataclass(frozen=True, slots=True)
class LiveRun:
    watchers: int
    frames: int  # frames offered
    delivered: int  # frames the watchers received, all together
    cpu_ms: float  # CPU per delivered frame: this process + the broker
    process_ms: float  # of which this process (ingest side, viewers)
    broker_ms: float
    raw_cpu_ms: float  # the same frames through plain Kafka to as many plain consumers
    raw_delivered: int


def _cpu() -> tuple[float, float]:
    return time.process_time(), children_cpu_s()


def _per_frame(start: tuple[float, float], delivered: int) -> tuple[float, float, float]:
    own, broker = time.process_time() - start[0], children_cpu_s() - start[1]
    n = max(delivered, 1)
    return (own + broker) * 1000 / n, own * 1000 / n, broker * 1000 / n


async def _pace(frames: list[bytes], offer: Callable[[int, int, bytes], Awaitable[None]]) -> None:
    """Call offer(i, ts, jpeg) at LIVE_FPS, as a camera's sampled frames arrive."""
    start = time.monotonic()
    with Progress(len(frames), "live frames", unit="frames") as progress:
        for i, jpeg in enumerate(frames):
            delay = start + i / LIVE_FPS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await offer(i, 1_763_000_000_000 + i * 50, jpeg)
            progress.advance()


async def _drain(counts: Callable[[], int], expected: int) -> None:
    deadline = time.monotonic() + DRAIN_S
    while counts() < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # polling counters the consumer tasks update


async def _raw(bootstrap: str, camera_id: str, frames: list[bytes], watchers: int) -> tuple[float, int]:
    producer = make_producer(bootstrap, client_id="bench-raw-live")
    await producer.start()
    consumers = [
        AIOKafkaConsumer(**client_security(), bootstrap_servers=bootstrap, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="latest",
                         max_partition_fetch_bytes=FETCH_BYTES)
        for _ in range(watchers)
    ]  # fmt: skip
    received = [0] * watchers

    async def read(i: int, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=FETCH_RECORDS)
            received[i] += sum(len(records) for records in batches.values())

    tasks: list[asyncio.Task[None]] = []
    try:
        for consumer in consumers:
            await consumer.start()
            partitions = sorted(consumer.partitions_for_topic(LIVE_FRAMES) or await _partitions(consumer))
            tp = TopicPartition(LIVE_FRAMES, DefaultPartitioner()(camera_id.encode(), partitions, partitions))
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            await consumer.position(tp)
        tasks = [asyncio.create_task(read(i, c)) for i, c in enumerate(consumers)]

        async def offer(i: int, ts: int, jpeg: bytes) -> None:
            headers = [("camera_id", camera_id.encode()), ("ts", str(ts).encode())]
            await producer.send(LIVE_FRAMES, jpeg, key=camera_id.encode(), headers=headers)

        start = _cpu()
        await _pace(frames, offer)
        await _drain(lambda: sum(received), len(frames) * watchers)
        delivered = sum(received)
        return _per_frame(start, delivered)[0], delivered
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()
        await producer.stop()


async def _partitions(consumer: AIOKafkaConsumer) -> set[int]:
    await consumer.topics()
    return consumer.partitions_for_topic(LIVE_FRAMES) or set()


async def _live(bootstrap: str, camera_id: str, frames: list[bytes], watchers: int) -> LiveRun:
    camera = Camera(camera_id, "bench", "bench", "rtsp://bench.invalid/stream", 2.0, ())
    channel = CameraChannel(camera, keyframe_interval_s=10, tamper_hold_s=10)
    producer = make_producer(bootstrap, client_id="bench-camera-ingest")
    await producer.start()
    feeds = LiveFeeds(bootstrap, {camera_id: channel}, producer)
    await feeds.start()
    background = [asyncio.create_task(feeds.run_watches()), asyncio.create_task(feeds.run_sender())]
    viewers = [LiveViewer(bootstrap, camera_id, "bench") for _ in range(watchers)]
    parts = [0] * watchers

    async def allowed() -> bool:
        return True

    async def watch(i: int, viewer: LiveViewer) -> None:
        async for _part in viewer.frames_of(allowed):
            parts[i] += 1

    try:
        for viewer in viewers:
            await viewer.open()
        background += [asyncio.create_task(watch(i, v)) for i, v in enumerate(viewers)]
        deadline = time.monotonic() + LEASE_WAIT_S
        while not feeds.watched(camera_id):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no live lease reached the camera ingest in {LEASE_WAIT_S:.0f} s")
            await asyncio.sleep(0.02)

        async def offer(i: int, ts: int, jpeg: bytes) -> None:
            # What process_frame does for a watched camera (there via call_soon_threadsafe).
            if feeds.watched(camera_id):
                feeds.offer(camera_id, ts, jpeg)

        start = _cpu()
        await _pace(frames, offer)
        await _drain(lambda: sum(parts), len(frames) * watchers)
        delivered = sum(parts)
        total, own, broker = _per_frame(start, delivered)
        return LiveRun(watchers, len(frames), delivered, total, own, broker, 0.0, 0)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for viewer in viewers:
            with contextlib.suppress(Exception):  # closing is best effort: the broker goes next
                await viewer.close()
        await feeds.stop()
        await producer.stop()


async def measure_live(settings: Settings, frames: list[bytes], watchers: list[int]) -> list[LiveRun]:
    from shell.infra import Infrastructure

    infra = Infrastructure(settings, parts=frozenset({"kafka"}))
    s = await asyncio.to_thread(infra.start)
    try:
        bootstrap = s.kafka_bootstrap
        assert bootstrap
        await ensure_topics(bootstrap)
        runs = []
        for n in watchers:
            # A camera id per run: a run's leftover frames or leases never reach the next one.
            camera_id = f"bench-live-{n}-{now_ms()}"
            raw_ms, raw_delivered = await _raw(bootstrap, camera_id + "-raw", frames, n)
            run = await _live(bootstrap, camera_id, frames, n)
            runs.append(
                LiveRun(run.watchers, run.frames, run.delivered, run.cpu_ms, run.process_ms, run.broker_ms,
                        raw_ms, raw_delivered)
            )  # fmt: skip
        return runs
    finally:
        await asyncio.to_thread(infra.stop)
