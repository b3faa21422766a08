"""Camera ingest: pull (or accept pushed) frames, gate static ones at the edge, watch for tamper
and outages, and put the frames worth looking at on `vigil.frames.v1`.

Threads (one reader per pulled camera, HTTP handlers for pushed ones) do the blocking work:
capture, decode, thumbnail, JPEG encode. They hand finished frames to the event loop, which owns
the Kafka producer. The hand-off queue is bounded; when it is full the newest frame is shed and
counted (frames are sheddable: the next one shows the same scene). CAMERA_OFFLINE and
CAMERA_TAMPERED findings are not sheddable: they are sent with retries until Kafka has them.

With clips on (an evidence directory and VIGIL_CLIP_BUFFER_S > 0), each camera keeps a ring of its
recent past (ingest/camera/ring.py): a pulled camera's own compressed packets, kept by its reader as
read (no work per frame), a pushed camera's JPEGs as sent; ClipMaker answers the detector's clip
requests from it, decoding only then. While a live lease holds, frames also go to `vigil.live.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.camera.channel import SENT_FRAMES, CameraChannel
from ingest.camera.clips import ClipMaker
from ingest.camera.live import LiveFeeds
from ingest.camera.push_auth import PushCredentials
from ingest.camera.reader import CameraReader
from ingest.camera.ring import FrameRing, PacketRing, StreamFormat
from ingest.camera.tamper import TamperState
from vigil import metrics, topics
from vigil.cameras import Camera, CameraRegistry
from vigil.catalogue import catalogue
from vigil.db import make_pool
from vigil.events import Violation, encode, violation_id
from vigil.evidence import EvidenceStore
from vigil.frames import FrameMeta, SendReason
from vigil.http import EmbeddedHttpServer
from vigil.kafka import DeadLetterSink, ensure_topics, now_ms, service_producer
from vigil.service import Service
from vigil.settings import Settings

log = logging.getLogger(__name__)

DETECTOR = "camera-ingest"
# How often camera health (offline) is checked: well under the offline threshold.
HEALTH_INTERVAL_S = 1.0
# Registry edits (a camera added, moved, disabled) reach the readers within this time.
REGISTRY_SYNC_S = 10.0
# A failed send of a finding is retried after this pause; findings are never given up on.
VIOLATION_RETRY_S = 1.0
# A pulled camera's clip ring holds at most VIGIL_CLIP_BUFFER_S times this many packets (one a
# picture): a 30-fps stream's with room to spare; a faster stream keeps a shorter past. The byte
# bound (VIGIL_CLIP_STREAM_MAX_BYTES) usually binds first; this one bounds the per-packet overhead.
MAX_STREAM_FPS = 60
# An intra-only (MJPEG) stream's pictures are kept at most this share of the sampling interval
# apart: a little under one interval, so the sampler's jitter never leaves a sample without one.
MJPEG_KEEP_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class _OutgoingFrame:
    channel: CameraChannel
    meta: FrameMeta
    jpeg: bytes


class CameraIngest(Service):
    name = "camera-ingest"

    def __init__(self, settings: Settings, *, serve_http: bool = True) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url, "infrastructure URLs must be resolved"
        self._settings = settings
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self.registry = CameraRegistry(self._pool)
        # Edge boxes' push tokens, looked up in the same database (ingest/camera/push_auth.py).
        self.push_credentials = PushCredentials(self._pool, settings)
        self.evidence = EvidenceStore(settings.evidence_dir) if settings.evidence_dir else None
        # Clips need somewhere to go and a ring to come from (ingest/camera/clips.py).
        self._clips_enabled = self.evidence is not None and settings.clip_buffer_s > 0
        self.clips: ClipMaker | None = None
        self.live: LiveFeeds | None = None
        self.channels: dict[str, CameraChannel] = {}
        self._readers: dict[str, CameraReader] = {}
        self._frames: asyncio.Queue[_OutgoingFrame] = asyncio.Queue(settings.camera_send_queue)
        self._findings: asyncio.Queue[Violation] = asyncio.Queue()  # unbounded: rare, and never shed
        self._producer: AIOKafkaProducer | None = None
        self._deadletter: DeadLetterSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: EmbeddedHttpServer | None = None
        if serve_http:
            from ingest.camera.http import create_camera_app  # FastAPI only where it is served

            self._http = EmbeddedHttpServer(
                create_camera_app(self, settings),
                host=settings.ingest_http_host,
                port=settings.ingest_http_port,
                label="camera ingest HTTP",
            )

    @property
    def http_url(self) -> str | None:
        return self._http.url if self._http else None

    # --- lifecycle -------------------------------------------------------------------------------

    async def _start(self) -> None:
        bootstrap = self._settings.kafka_bootstrap
        assert bootstrap
        self._loop = asyncio.get_running_loop()
        await ensure_topics(bootstrap)
        await self._pool.open(wait=True)
        await self.registry.load()
        self._producer = service_producer(self._settings, self.name)
        await self._producer.start()
        self._deadletter = DeadLetterSink(self._producer, self.name)
        if self._clips_enabled:
            assert self.evidence is not None
            self.clips = ClipMaker(bootstrap, self.channels, self.evidence, self._producer, self.spawn)
            await self.clips.start()
            self.spawn(self.clips.run(), "clip-requests")
        self.live = LiveFeeds(bootstrap, self.channels, self._producer)
        await self.live.start()
        self.spawn(self.live.run_watches(), "live-watches")
        self.spawn(self.live.run_sender(), "live-frames")
        self._sync_readers()
        self.spawn(self._send_frames(), "send-frames")
        self.spawn(self._send_findings(), "send-findings")
        self.spawn(self._watch_health(), "health")
        self.spawn(self._sync_registry(), "registry")
        if self._http is not None:
            await self._http.start(self.spawn)
        log.info("camera ingest started: %d cameras", len(self.channels))

    async def stop(self) -> None:
        if self._started and not self._stopped and self._http is not None:
            await self._http.shutdown()
        await super().stop()

    async def _stop(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in readers))
        if self.clips is not None:
            await self.clips.stop()
        if self.live is not None:
            await self.live.stop()
        if self._producer is not None:
            # Findings queued but not yet sent get one last chance before the producer closes.
            with contextlib.suppress(KafkaError, asyncio.TimeoutError):
                while not self._findings.empty():
                    await asyncio.wait_for(self._send_finding(self._findings.get_nowait()), 5)
            await self._producer.stop()
        await self._pool.close()

    # --- cameras ---------------------------------------------------------------------------------

    def channel(self, camera: Camera) -> CameraChannel:
        channel = self.channels.get(camera.camera_id)
        if channel is None or channel.camera != camera:
            s = self._settings
            ring: FrameRing | PacketRing | None = None
            if self._clips_enabled and camera.pushed:  # the pushes' JPEGs, as sent
                ring = FrameRing(
                    max_age_ms=int(s.clip_buffer_s * 1000),
                    max_frames=s.clip_buffer_max_frames,
                    max_bytes=s.clip_buffer_max_bytes,
                )
            elif self._clips_enabled:  # the stream's own packets, as read (ingest/camera/reader.py)
                ring = PacketRing(
                    max_age_ms=int(s.clip_buffer_s * 1000),
                    max_packets=max(1, round(s.clip_buffer_s * MAX_STREAM_FPS)),
                    max_bytes=s.clip_stream_max_bytes,
                    # An MJPEG camera's pictures are kept at its sampling rate (a clip's rate).
                    min_interval_ms=int(1000 / camera.sample_fps * MJPEG_KEEP_SHARE),
                )
            channel = CameraChannel(
                camera,
                keyframe_interval_s=s.camera_keyframe_interval_s,
                tamper_hold_s=s.camera_tamper_hold_s,
                ring=ring,
            )
            self.channels[camera.camera_id] = channel
        return channel

    def _sync_readers(self) -> None:
        wanted = {c.camera_id: c for c in self.registry.all() if c.enabled}
        for camera_id, reader in list(self._readers.items()):
            if wanted.get(camera_id) != reader.camera:
                del self._readers[camera_id]
                # Stopping joins the thread, which may sit in a network read: not on the loop.
                self.spawn(asyncio.to_thread(reader.stop), f"stop-{camera_id}")
        for camera_id in list(self.channels):
            if camera_id not in wanted:
                del self.channels[camera_id]
        for camera in wanted.values():
            self.channel(camera)
            if not camera.pushed and camera.camera_id not in self._readers:
                reader = CameraReader(camera, self.process_frame, self._keep_packet)
                self._readers[camera.camera_id] = reader
                reader.start()

    async def _sync_registry(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_SYNC_S)
            try:
                await self.registry.load()
            except Exception as exc:
                log.warning("camera registry reload failed (%s); keeping the cameras running", exc)
                continue
            self._sync_readers()

    # --- frames (called on reader and HTTP worker threads) ---------------------------------------

    def process_frame(
        self, camera: Camera, frame: np.ndarray, ts_ms: int, *, jpeg: bytes | None = None
    ) -> tuple[bool, str]:
        """Gate, tamper-check and (if it is worth it) send one frame. Returns (sent, reason).
        Thread-safe; blocking work only, so call it off the event loop."""
        channel = self.channels.get(camera.camera_id)
        if channel is None or self._loop is None:
            return False, "camera_not_active"
        decision, tamper, seq = channel.analyse(frame, ts_ms)
        if tamper.changed:
            snapshot = self._encode(frame) if tamper.tampered else None
            self._loop.call_soon_threadsafe(self._tamper_changed, channel, tamper, snapshot)
        reason: SendReason = "push" if jpeg is not None else decision.reason  # type: ignore[assignment]
        if isinstance(channel.ring, FrameRing) and jpeg is not None:
            # A push's JPEG, gated or not: clips need the frames the gate holds back too. (A pulled
            # camera's ring is filled by its reader with the stream's packets: `_keep_packet`.)
            channel.ring.append(ts_ms, jpeg)
        if self.live is not None and self.live.watched(camera.camera_id):
            if jpeg is None:
                jpeg = self._encode(frame)
            self._loop.call_soon_threadsafe(self.live.offer, camera.camera_id, ts_ms, jpeg)
        if not decision.send:
            return False, decision.reason
        if jpeg is None:
            jpeg = self._encode(frame)
        if len(jpeg) > self._settings.frame_max_bytes:
            channel.unsend(too_large=True)
            self._loop.call_soon_threadsafe(self._too_large, channel, len(jpeg))
            return False, "too_large"
        meta = FrameMeta(camera.camera_id, camera.enterprise_id, camera.site_id, ts_ms, seq, reason)
        self._loop.call_soon_threadsafe(self._offer, _OutgoingFrame(channel, meta, jpeg))
        return True, decision.reason

    def _keep_packet(
        self, camera: Camera, fmt: StreamFormat, ts_ms: int, data: bytes, key: bool, pts: int | None
    ) -> None:
        """A pulled camera's packet into its clip ring (on the reader's thread)."""
        channel = self.channels.get(camera.camera_id)
        if channel is not None and isinstance(channel.ring, PacketRing):
            channel.ring.append(fmt, ts_ms, data, key, pts)

    def _encode(self, frame: np.ndarray) -> bytes:
        height, width = frame.shape[:2]
        if width > self._settings.camera_max_width:
            scale = self._settings.camera_max_width / width
            size = (self._settings.camera_max_width, round(height * scale))
            frame = np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._settings.camera_jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()

    # --- on the event loop -----------------------------------------------------------------------

    def _offer(self, item: _OutgoingFrame) -> None:
        try:
            self._frames.put_nowait(item)
        except asyncio.QueueFull:
            item.channel.unsend(too_large=False)

    def _too_large(self, channel: CameraChannel, size: int) -> None:
        assert self._deadletter is not None
        limit = self._settings.frame_max_bytes
        detail = f"frame of {size} bytes exceeds VIGIL_FRAME_MAX_BYTES={limit}; lower the camera's resolution"
        # The dead letter carries the reason, not the picture: that is what is too large.
        self.spawn(
            self._deadletter.send(
                source=f"camera/{channel.camera.camera_id}",
                reason="frame_too_large",
                detail=detail,
                payload=b"",
                key=channel.camera.camera_id.encode(),
            ),
            "deadletter",
        )

    async def _send_frames(self) -> None:
        assert self._producer is not None
        while True:
            item = await self._frames.get()
            try:
                # send() waits only for room in the producer's buffer; delivery is awaited by a
                # callback so one slow acknowledgement does not stall every camera.
                future = await self._producer.send(
                    topics.FRAMES,
                    value=item.jpeg,
                    key=item.meta.camera_id.encode(),
                    headers=item.meta.headers(),
                )
            except KafkaError as exc:
                item.channel.unsend(too_large=False)
                log.warning("frame from %s shed: %s", item.meta.camera_id, exc)
                continue
            future.add_done_callback(lambda f, ch=item.channel: self._frame_delivered(f, ch))

    @staticmethod
    def _frame_delivered(future: asyncio.Future[object], channel: CameraChannel) -> None:
        if future.cancelled() or future.exception() is not None:
            channel.unsend(too_large=False)
        else:
            SENT_FRAMES.inc()

    def _tamper_changed(self, channel: CameraChannel, state: TamperState, snapshot: bytes | None) -> None:
        camera = channel.camera
        since = state.since_ms or now_ms()
        # `params`: the summary people read (vigil.summaries), one text per kind of tamper.
        evidence: dict[str, object] = {
            "kind": state.kind,
            "detail": state.detail,
            "params": {"variant": state.kind},
        }
        if snapshot is not None and self.evidence is not None:
            evidence["snapshot_sha256"] = self.evidence.put(snapshot)
        what = state.kind.replace("_", " ") if state.kind else "tampered"
        summary = (
            f"Camera {camera.camera_id}: {what} ({state.detail})"
            if state.tampered
            else f"Camera {camera.camera_id}: view restored"
        )
        self._finding(
            camera, "CAMERA_TAMPERED", since, active=state.tampered, summary=summary, evidence=evidence
        )

    def _finding(
        self,
        camera: Camera,
        code: str,
        since_ms: int,
        *,
        active: bool,
        summary: str,
        evidence: dict[str, object],
    ) -> None:
        self._findings.put_nowait(
            Violation(
                violation_id=violation_id("camera", camera.camera_id, code, since_ms),
                code=code,
                state="active" if active else "cleared",
                enterprise_id=camera.enterprise_id,
                site_id=camera.site_id,
                source_kind="camera",
                source_id=camera.camera_id,
                window_start=since_ms,
                detected_at=now_ms(),
                severity=catalogue()[code].severity,
                detector=DETECTOR,
                summary=summary,
                evidence=evidence,
            )
        )

    async def _send_findings(self) -> None:
        while True:
            violation = await self._findings.get()
            while True:
                try:
                    await self._send_finding(violation)
                    break
                except KafkaError as exc:
                    log.warning(
                        "sending %s for %s failed (%s); retrying", violation.code, violation.source_id, exc
                    )
                    await asyncio.sleep(VIOLATION_RETRY_S)

    async def _send_finding(self, violation: Violation) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(
            topics.VIOLATIONS, encode(violation), key=violation.source_id.encode()
        )

    async def _watch_health(self) -> None:
        offline_after = self._settings.camera_offline_after_s
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            now = time.time()
            for channel in list(self.channels.values()):
                camera = channel.camera
                last = channel.last_frame_at or channel.created_at
                if channel.offline_since_ms is None and now - last > offline_after:
                    channel.offline_since_ms = int(last * 1000)
                    reader = self._readers.get(camera.camera_id)
                    why = reader.stats.last_error if reader and reader.stats.last_error else "no frames"
                    self._finding(
                        camera,
                        "CAMERA_OFFLINE",
                        channel.offline_since_ms,
                        active=True,
                        summary=f"Camera {camera.camera_id} offline for {offline_after:g}s: {why}",
                        evidence={
                            "last_frame_at": int(last * 1000),
                            "error": why,
                            # The figures of the summary people read (vigil.summaries).
                            "params": {"offline_s": offline_after},
                        },
                    )
                elif channel.offline_since_ms is not None and now - last <= offline_after:
                    self._finding(
                        camera,
                        "CAMERA_OFFLINE",
                        channel.offline_since_ms,
                        active=False,
                        summary=f"Camera {camera.camera_id} back online",
                        evidence={"back_at": int(channel.last_frame_at * 1000)},
                    )
                    channel.offline_since_ms = None
            self._report_cameras()

    def _report_cameras(self) -> None:
        """Cameras by state for Prometheus (counts only: per-camera state is on this service's
        own /metrics), refreshed with every health check."""
        online = offline = tampered = 0
        for channel in self.channels.values():
            if channel.offline_since_ms is None and channel.last_frame_at > 0:
                online += 1
            else:
                offline += 1
            if channel.tamper_state is not None and channel.tamper_state.tampered:
                tampered += 1
        metrics.cameras.labels("online").set(online)
        metrics.cameras.labels("offline").set(offline)
        metrics.cameras.labels("tampered").set(tampered)

    async def dead_letter(self, *, source: str, reason: str, detail: str, payload: bytes, key: str) -> None:
        """Record a refused input (a bad pushed frame) and wait until Kafka has it."""
        assert self._deadletter is not None, "camera ingest is not started"
        future = await self._deadletter.send(
            source=source, reason=reason, detail=detail, payload=payload, key=key.encode()
        )
        await future

    def stats(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for camera_id, channel in self.channels.items():
            reader = self._readers.get(camera_id)
            tamper = channel.tamper_state
            out[camera_id] = {
                "source": "push" if channel.camera.pushed else "pull",
                "online": channel.offline_since_ms is None and channel.last_frame_at > 0,
                "tampered": bool(tamper and tamper.tampered),
                "tamper_kind": tamper.kind if tamper and tamper.tampered else None,
                "frames": {
                    "analysed": channel.counters.analysed,
                    "sent": channel.counters.sent,
                    "gated": channel.counters.gated,
                    "keyframes": channel.counters.keyframes,
                    "dropped": channel.counters.dropped,
                    "too_large": channel.counters.too_large,
                },
                "reconnects": reader.stats.disconnects if reader else 0,
                "last_error": reader.stats.last_error if reader else "",
            }
        return out
