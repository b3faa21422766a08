"""Event clips: the vision detector asks (`vigil.clip-requests.v1`) for a clip around a finding;
the camera ingest that holds the camera's recent frames (ingest/camera/ring.py) waits until the
"after" window has passed, encodes the frames as WebM (VP8, which the OpenCV wheel's bundled
FFmpeg writes and every browser plays), stores it content-addressed in the evidence store, and
answers on `vigil.clips.v1` for the alerts service to record on the alert.

Every camera ingest reads every request (no consumer group: requests are a handful an hour) and
answers only for the cameras whose frames it holds, so it works however the cameras are shared
among instances. A failure (encoder, full disk) is answered too, as "failed", so the alert's audit
says why it has no clip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import av
import av.error
import cv2
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from av.video.reformatter import VideoReformatter

from ingest.camera.channel import CameraChannel
from ingest.camera.reader import decode_jpeg, stream_decoder, to_bgr
from ingest.camera.ring import PacketRing, PacketWindow, PictureClock
from vigil import metrics, topics
from vigil.errors import InvalidMessage
from vigil.events import ClipReady, ClipRequest, Json, decode_clip_request, encode
from vigil.evidence import EvidenceStore
from vigil.kafka import now_ms, start_tail

log = logging.getLogger(__name__)

# The sampler may miss a frame at either end of the window without the camera having stopped:
# a clip is truncated only when more than two frame intervals are missing at an end.
EDGE_TOLERANCE_FRAMES = 2
# A frame is stamped when captured and reaches the ring milliseconds later; waiting this long past
# the window's end lets the last frames arrive (a second covers one interval at 1 fps).
AFTER_GRACE_MS = 1000
# A loaded machine delays frames further (decode and gate queue behind other work): while the
# ring has not reached the window's end, wait up to this much longer, checking this often, before
# calling the clip truncated. A camera that really dropped costs its clip these seconds.
LATE_FRAMES_WAIT_MS, LATE_FRAMES_POLL_S = 3000, 0.25
# The detector's boxes are where the model saw the behaviour in one frame: they are drawn on the
# frames within this long of it (about two frames each side at 2 fps), long enough to be seen when
# the clip plays, short enough not to claim a position for frames the model did not judge.
BOX_HOLD_MS = 1000
# Clips waiting for their "after" window or the encoder, per process. Findings are rate-limited
# per camera and code (the detector's cooldown), so 32 covers a burst across many cameras; beyond
# it a request is answered "failed" rather than queued without bound.
MAX_PENDING = 32
# A clip's answer is retried this often before it is given up (logged): Kafka away for ~30 s.
SEND_ATTEMPTS, SEND_RETRY_S = 30, 1.0
BOX_COLOUR = (0, 0, 255)  # red, as on the evidence snapshot
CLIP_FOURCC = "VP80"  # VP8: ~4x faster to encode than VP9 in the wheel's FFmpeg, same browsers

_OUTCOMES = {k: metrics.camera_clips.labels(k) for k in ("encoded", "truncated", "failed", "no_frames")}


class ClipError(Exception):
    """The clip could not be made (encoder, undecodable frames, storage)."""


@dataclass(frozen=True, slots=True)
class Clip:
    webm: bytes
    frames: int  # frames written (a frame held over a gap counts once per interval it fills)
    duration_ms: int


def _draw_boxes(image: np.ndarray, boxes: Sequence[Json]) -> None:
    thickness = max(2, round(min(image.shape[:2]) / 240))
    for box in boxes:
        xyxy = box.get("xyxy")
        if not (isinstance(xyxy, list) and len(xyxy) == 4 and all(isinstance(v, int | float) for v in xyxy)):
            continue  # a malformed box is not drawn; the clip is still worth having
        x1, y1, x2, y2 = (round(v) for v in xyxy)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        label = f"{box.get('class', '')} {box.get('score', '')}".strip()
        cv2.putText(image, label, (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_COLOUR, 1)


def jpeg_images(frames: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, np.ndarray]]:
    """A FrameRing window's pictures, decoded (one that does not decode is left out)."""
    for ts, jpeg in frames:
        image = decode_jpeg(jpeg)
        if image is not None:  # cannot fail for frames pushes were checked for; never trusted
            yield ts, image


def packet_images(window: PacketWindow, fps: float) -> Iterator[tuple[int, np.ndarray]]:
    """A PacketRing window's pictures at `fps`: every packet from the keyframe on is decoded (the
    pictures inside the window are predicted from it), and a picture within the window is kept
    when at least one interval has passed since the last kept one. Pictures are stamped by the
    stream's own clock (PictureClock), as the reader stamps them. A packet the decoder refuses is
    skipped: the pictures after it may be damaged until the next keyframe, as on the live stream."""
    fmt = window.format
    if fmt.codec == "mjpeg":  # whole JPEGs, kept at the sampling rate already (PacketRing)
        pictures = ((p.ts_ms, p.data) for p in window.packets if window.start_ms <= p.ts_ms <= window.end_ms)
        yield from jpeg_images(pictures)
        return
    decoder = stream_decoder(fmt)
    clock = PictureClock(fmt.ms_per_tick)
    reformatter = VideoReformatter()  # this clip's own (see to_bgr)
    interval_ms = 1000.0 / fps
    next_ts = float(window.start_ms)
    ts = window.start_ms
    for packet in (*window.packets, None):  # None: flush the pictures the decoder still holds
        data = None
        if packet is not None:
            ts = packet.ts_ms
            clock.packet(ts, packet.keyframe, packet.pts)
            data = av.Packet(packet.data)
            data.pts = packet.pts
        try:
            frames = decoder.decode(data)
        except av.error.InvalidDataError:
            continue
        for frame in frames:
            taken = clock.picture(frame.pts, ts)
            if window.start_ms <= taken <= window.end_ms and taken >= next_ts:
                next_ts = max(next_ts + interval_ms, taken)  # after a gap: on from here, no catching up
                yield taken, to_bgr(frame, reformatter)


def encode_clip(
    images: Iterable[tuple[int, np.ndarray]], fps: float, *, boxes: Sequence[Json] = (), box_ts: int = 0
) -> Clip:
    """Encode (ts, BGR picture) pairs, oldest first, as a VP8 WebM at `fps`. A picture is held for
    as many intervals as pass until the next one, so the clip plays in real time across gaps."""
    interval_ms = 1000.0 / fps
    fd, path = tempfile.mkstemp(suffix=".webm", prefix="vigil-clip-")
    os.close(fd)
    writer: cv2.VideoWriter | None = None
    written = 0
    size: tuple[int, int] | None = None

    def write(ts: int, image: np.ndarray, nxt: float) -> None:
        nonlocal writer, written, size
        if size is None:
            size = (image.shape[1], image.shape[0])
            writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*CLIP_FOURCC), fps, size)
            if not writer.isOpened():
                raise ClipError(f"the video encoder ({CLIP_FOURCC} WebM) could not be opened")
        elif (image.shape[1], image.shape[0]) != size:  # the camera changed resolution mid-clip
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        if boxes and abs(ts - box_ts) <= BOX_HOLD_MS:
            image = image.copy()  # the decoder's or a caller's picture: drawn on a copy
            _draw_boxes(image, boxes)
        assert writer is not None
        for _ in range(max(1, round((nxt - ts) / interval_ms))):
            writer.write(image)
            written += 1

    try:
        held: tuple[int, np.ndarray] | None = None  # one picture of look-ahead: its hold needs the next
        for ts, image in images:
            if held is not None:
                write(*held, ts)
            held = (ts, image)
        if held is not None:
            write(*held, held[0] + interval_ms)
        if writer is None or written == 0:
            raise ClipError("no frames to encode: none of the window's pictures could be decoded")
        writer.release()
        writer = None
        with open(path, "rb") as f:
            webm = f.read()
        if not webm:
            raise ClipError("the video encoder wrote nothing")
        return Clip(webm, written, round(written * interval_ms))
    finally:
        if writer is not None:
            writer.release()
        with contextlib.suppress(OSError):
            os.unlink(path)


def is_truncated(stamps: Sequence[int], start_ms: int, end_ms: int, fps: float) -> bool:
    """Whether pictures are missing at either end of [start_ms, end_ms] (the camera dropped, or had
    not been running long enough), beyond what sampling jitter explains."""
    if not stamps:
        return True
    slack = EDGE_TOLERANCE_FRAMES * 1000.0 / fps
    return stamps[0] - start_ms > slack or end_ms - stamps[-1] > slack


class ClipMaker:
    """Reads clip requests, makes the clips of this instance's cameras, publishes the answers."""

    def __init__(
        self,
        bootstrap: str,
        channels: Mapping[str, CameraChannel],
        evidence: EvidenceStore,
        producer: AIOKafkaProducer,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
    ) -> None:
        self._bootstrap = bootstrap
        self._channels, self._evidence, self._producer, self._spawn = channels, evidence, producer, spawn
        self._consumer: AIOKafkaConsumer | None = None
        self._pending = 0
        # One clip encoded at a time per process: encoding is CPU-bound (0.8 s for a 10 s clip at
        # 2 fps of 640x480, 1.9 s of 1280x720), and frames keep arriving on the readers meanwhile.
        self._encoder = asyncio.Semaphore(1)
        self.stats: dict[str, int] = dict.fromkeys(_OUTCOMES, 0)

    async def start(self) -> None:
        """Assign every partition of the request topic at its end, before returning: a request
        published after start() is seen."""
        self._consumer = await start_tail(
            self._bootstrap, topics.CLIP_REQUESTS, client_id="camera-ingest-clips"
        )

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                request = decode_clip_request(record.value or b"")
            except InvalidMessage as exc:
                log.warning("clip request %s@%d refused: %s", record.topic, record.offset, exc)
                continue
            self.offer(request)

    def offer(self, request: ClipRequest) -> bool:
        """Take a request if this instance holds the camera's frames; False when it is not ours."""
        channel = self._channels.get(request.camera_id)
        if channel is None or channel.ring is None or channel.camera.enterprise_id != request.enterprise_id:
            return False
        if not len(channel.ring):
            return False  # another instance pulls (or is pushed) this camera
        if self._pending >= MAX_PENDING:
            self._spawn(
                self._answer(request, None, "failed", "too many clips pending on this instance"), "clip"
            )
            return True
        self._pending += 1
        self._spawn(self._make(request, channel), f"clip-{request.violation_id}")
        return True

    async def _make(self, request: ClipRequest, channel: CameraChannel) -> None:
        try:
            start, end = request.ts - request.before_ms, request.ts + request.after_ms
            wait_s = (end + AFTER_GRACE_MS - now_ms()) / 1000
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            assert channel.ring is not None
            ring, fps = channel.ring, channel.camera.sample_fps
            slack = EDGE_TOLERANCE_FRAMES * 1000.0 / fps
            # Polled, not awaited on an event: the ring is filled by reader threads, which know
            # nothing of this loop, and a few polls per clip cost nothing.
            for _ in range(round(LATE_FRAMES_WAIT_MS / 1000 / LATE_FRAMES_POLL_S)):
                if (ring.last_ts() or 0) >= end - slack:
                    break
                await asyncio.sleep(LATE_FRAMES_POLL_S)
            images: Iterable[tuple[int, np.ndarray]]
            if isinstance(ring, PacketRing):
                window = ring.window(start, end)
                stamps = window.stamps() if window is not None else []
                images = packet_images(window, fps) if window is not None else ()
            else:
                frames = ring.window(start, end)
                stamps, images = [ts for ts, _ in frames], jpeg_images(frames)
            if not stamps:
                await self._answer(request, None, "no_frames", "no frames of the clip's window are kept")
                return
            truncated = is_truncated(stamps, start, end, fps)
            try:
                async with self._encoder:
                    started = time.perf_counter()
                    # Decoded as encoded, on the worker thread: one picture in memory at a time.
                    clip = await asyncio.to_thread(
                        encode_clip, images, fps, boxes=request.boxes, box_ts=request.box_ts
                    )
                    sha = await asyncio.to_thread(self._evidence.put_clip, clip.webm)
                    metrics.clip_encode_seconds.observe(time.perf_counter() - started)
            except Exception as exc:  # encoder, storage, a stream it cannot decode: answered, never silent
                log.warning("clip for %s on %s failed: %s", request.violation_id, request.camera_id, exc)
                await self._answer(request, None, "failed", f"{type(exc).__name__}: {exc}")
                return
            await self._answer(request, (sha, clip), "truncated" if truncated else "encoded", "")
        finally:
            self._pending -= 1

    async def _answer(
        self, request: ClipRequest, made: tuple[str, Clip] | None, outcome: str, detail: str
    ) -> None:
        self.stats[outcome] += 1
        _OUTCOMES[outcome].inc()
        sha, clip = made if made is not None else ("", None)
        ready = ClipReady(
            violation_id=request.violation_id,
            enterprise_id=request.enterprise_id,
            camera_id=request.camera_id,
            status="ready" if clip is not None else "failed",
            sha256=sha,
            frames=clip.frames if clip else 0,
            duration_ms=clip.duration_ms if clip else 0,
            truncated=outcome == "truncated",
            detail=detail,
            at=now_ms(),
        )
        for attempt in range(SEND_ATTEMPTS):
            try:
                await self._producer.send_and_wait(
                    topics.CLIPS, encode(ready), key=request.camera_id.encode()
                )
                return
            except KafkaError as exc:
                if attempt + 1 == SEND_ATTEMPTS:
                    log.error("clip answer for %s given up: %s", request.violation_id, exc)
                    return
                await asyncio.sleep(SEND_RETRY_S)
