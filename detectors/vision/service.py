"""The vision detector: a consumer-group member on `vigil.frames.v1` that batches frames across
cameras, runs the ONNX model, and turns confirmed detections into violations with evidence.

It never lags behind real time: a frame older than `vision_max_lag_s` when its turn comes is
dropped and counted instead of analysed, so a detector that fell behind (a burst, a restart)
catches up at the cost of frames, not of ever-later findings. Decoding and inference run on a
worker thread; the event loop only moves records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from aiokafka.structs import RecordMetadata

from detectors.vision.annotate import annotate
from detectors.vision.backends import DetectorBackend, PreparedBatch, load_backend
from detectors.vision.clips import clip_request
from detectors.vision.confirm import CameraConfirmer, Confirmed, Hit, in_zones
from detectors.vision.detections import Detections
from detectors.vision.held import apply_held_rules, held_rules
from detectors.vision.jpeg import decode_for_model
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest
from detectors.vision.schedule import is_closed
from vigil import metrics, topics
from vigil.cameras import Camera, CameraRegistry
from vigil.catalogue import catalogue
from vigil.errors import InvalidMessage
from vigil.events import Violation, encode, violation_id
from vigil.evidence import EvidenceStore, evidence_store
from vigil.frames import FrameMeta, decode_frame_meta
from vigil.kafka import now_ms
from vigil.registry import SiteHoursRegistry
from vigil.settings import Settings
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

# Prometheus children bound once (labels resolved per batch would cost a dict lookup and a lock).
_INFERRED = metrics.vision_frames.labels("inferred")
_STALE = metrics.vision_frames.labels("stale")
_UNDECODABLE = metrics.vision_frames.labels("undecodable")
_INVALID = metrics.vision_frames.labels("invalid")
_VIOLATIONS = metrics.violations.labels("vision")

# Latencies kept for percentiles: enough for a stable p95, bounded memory.
LATENCY_SAMPLES = 4096


@dataclass(slots=True)
class VisionStats:
    frames_in: int = 0
    analysed: int = 0
    dropped_stale: int = 0  # too old when their turn came: shed to stay real-time
    invalid: int = 0  # dead-lettered (bad headers, not a JPEG, unknown camera)
    undecodable: int = 0
    batches: int = 0
    violations: int = 0
    # Monotonic times of the first and latest analysed batch, for throughput.
    first_at: float = 0.0
    last_at: float = 0.0
    first_batch_frames: int = 0  # frames of the first batch: analysed before first_at was stamped
    # Seconds spent inside the model's run: frames / this is the model's own rate within the loop,
    # at the same moments and under the same neighbours, the loop's overhead the rest.
    infer_s: float = 0.0
    # Seconds in the other stages (their own threads): decode + letterbox, and the model output's
    # decoding + confirmation + evidence. Per frame, with infer_s: where each millisecond goes.
    prepare_s: float = 0.0
    post_s: float = 0.0
    # Capture-to-analysed and capture-to-violation latencies, ms.
    frame_latency_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    violation_latency_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))


@dataclass(frozen=True, slots=True)
class _Frame:
    meta: FrameMeta
    camera: Camera
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class _Prepared:
    frames: list[_Frame]
    factors: list[int]  # each frame's decode reduction (1, 2, 4 or 8)
    sizes: list[tuple[int, int]]  # each frame's full width and height
    batch: PreparedBatch | None  # None when no frame of the chunk was left to analyse


class VisionDetector(KafkaWorker):
    name = "detector-vision"
    topic = topics.FRAMES
    group_id = "vigil-detector-vision"
    # Frames are large and each costs milliseconds of inference: small fetches keep the commit
    # interval short and the staleness check close to the moment of analysis.
    max_records = 64

    def __init__(self, settings: Settings, *, manifest: ModelManifest | None = None) -> None:
        super().__init__(settings)
        self.manifest = manifest or load_manifest(find_manifest(settings.vision_model))
        # One consumer group per model: a second detector running another model (the COCO person
        # and phone model beside the kitchen one) sees every frame instead of splitting them with
        # the first. The shipped default keeps the group name it always had.
        if self.manifest.name != "kitchen":
            self.group_id = f"{VisionDetector.group_id}-{self.manifest.name}"
        self.cameras = CameraRegistry(self._pool)
        # Opening hours, for the codes whose manifest rule says `when = "closed"`.
        self.sites = SiteHoursRegistry(self._pool)
        self._zone = ZoneInfo(settings.timezone)
        self._closed_only = frozenset(v.code for v in self.manifest.violations.values() if v.when == "closed")
        self.evidence: EvidenceStore = evidence_store(settings)
        self.stats = VisionStats()
        self._backend: DetectorBackend | None = None
        # One thread per pipeline stage; each stage's state is touched by its thread only.
        self._prep_thread = ThreadPoolExecutor(1, thread_name_prefix="vision-prepare")
        self._infer_thread = ThreadPoolExecutor(1, thread_name_prefix="vision-infer")
        self._post_thread = ThreadPoolExecutor(1, thread_name_prefix="vision-confirm")
        self._confirmers: dict[str, CameraConfirmer] = {}
        self._max_lag_ms = int(settings.vision_max_lag_s * 1000)
        # Vectorised class -> (code, minimum score) lookup; -1 marks classes that raise nothing.
        classes = self.manifest.classes
        self._codes: tuple[str, ...] = tuple(sorted({v.code for v in self.manifest.violations.values()}))
        self._class_code = np.full(len(classes), -1, dtype=np.int32)
        self._class_min_score = np.ones(len(classes), dtype=np.float32)
        for name, rule in self.manifest.violations.items():
            index = classes.index(name)
            self._class_code[index] = self._codes.index(rule.code)
            self._class_min_score[index] = rule.min_score
        # Classes that count only when another class's box holds them: (class, holder, rule).
        self._held = held_rules(self.manifest)

    @property
    def backend(self) -> DetectorBackend:
        assert self._backend is not None, "vision detector is not started"
        return self._backend

    async def _prepare(self) -> None:
        s = self._settings
        providers = [p.strip() for p in s.vision_providers.split(",") if p.strip()]
        # Loading and warming up a session takes a while: not on the event loop.
        self._backend = await asyncio.to_thread(
            load_backend,
            self.manifest,
            providers=providers,
            intra_op_threads=s.vision_threads or None,
            max_batch=s.vision_max_batch,
        )
        await self.cameras.load()
        if self._closed_only:
            await self.sites.load()
        log.info("vision detector ready: model %s, %d cameras", self.manifest.name, len(self.cameras.all()))

    async def _stop(self) -> None:
        await super()._stop()
        # Waits for a chunk still in a stage (its task was cancelled, its thread runs on).
        await asyncio.to_thread(self._prep_thread.shutdown, wait=True)
        await asyncio.to_thread(self._infer_thread.shutdown, wait=True)
        await asyncio.to_thread(self._post_thread.shutdown, wait=True)
        if self._backend is not None:
            self._backend.close()

    # --- the loop --------------------------------------------------------------------------------

    async def handle(self, records: Sequence[Record]) -> None:
        pending: list[asyncio.Future[RecordMetadata]] = []
        frames: list[_Frame] = []
        now = now_ms()
        for record in records:
            self.stats.frames_in += 1
            try:
                meta = decode_frame_meta(record.headers, record.value, now_ms=now)
            except InvalidMessage as exc:
                self.stats.invalid += 1
                _INVALID.inc()
                pending.append(await self.dead_letter(record, exc.reason, exc.detail))
                continue
            camera = await self.cameras.lookup(meta.camera_id)
            if camera is not None and self._closed_only:
                await self.sites.lookup(camera.site_id)  # keeps the hours fresh; read in _confirm
            if camera is None or camera.enterprise_id != meta.enterprise_id:
                self.stats.invalid += 1
                _INVALID.inc()
                reason = "unknown_camera" if camera is None else "enterprise_mismatch"
                detail = f"camera {meta.camera_id!r} is not registered to enterprise {meta.enterprise_id!r}"
                pending.append(await self.dead_letter(record, reason, detail))
                continue
            assert record.value is not None  # decode_frame_meta refused empty values
            frames.append(_Frame(meta, camera, record.value))
        # A three-stage pipeline: while the model runs on one chunk (inference thread), the next is
        # decoded and letterboxed (preparation thread) and the previous one's output is decoded and
        # confirmed (confirmation thread). The model and OpenCV release the GIL, so the stages
        # overlap and the model is rarely left waiting for input or for its own post-processing.
        loop = asyncio.get_running_loop()
        # The backend's batch, not the setting: a model exported with a fixed batch (YOLOX-Nano's
        # is 1) takes exactly that many images per run.
        batch = self.backend.batch_size
        chunks = [frames[i : i + batch] for i in range(0, len(frames), batch)]
        ahead: asyncio.Future[_Prepared] | None = None
        confirming: asyncio.Future[list[Violation]] | None = None
        for i, chunk in enumerate(chunks):
            if ahead is None:
                ahead = loop.run_in_executor(self._prep_thread, self._prepare_chunk, chunk)
            prepared = await ahead
            ahead = None
            if i + 1 < len(chunks):
                # Prepared now, so staleness is judged just before the chunk's turn, not at fetch.
                ahead = loop.run_in_executor(self._prep_thread, self._prepare_chunk, chunks[i + 1])
            if prepared.batch is None:
                continue
            outputs = await loop.run_in_executor(self._infer_thread, self._infer, prepared)
            previous = confirming
            confirming = loop.run_in_executor(self._post_thread, self._confirm_chunk, prepared, outputs)
            if previous is not None:  # confirmed while this chunk was inferred
                pending += await self._send_violations(await previous)
        if confirming is not None:
            pending += await self._send_violations(await confirming)
        if pending:
            await asyncio.gather(*pending)  # everything delivered before the batch is committed

    def _drop_stale(self, frames: list[_Frame]) -> list[_Frame]:
        cutoff = now_ms() - self._max_lag_ms
        fresh = [f for f in frames if f.meta.ts >= cutoff]
        self.stats.dropped_stale += len(frames) - len(fresh)
        if len(fresh) < len(frames):
            _STALE.inc(len(frames) - len(fresh))
        return fresh

    def _prepare_chunk(self, frames: list[_Frame]) -> _Prepared:
        """Drop stale frames, decode (reduced where the model would shrink anyway), letterbox."""
        started = time.perf_counter()
        images, kept, factors, sizes = [], [], [], []
        for frame in self._drop_stale(frames):
            image, factor = decode_for_model(frame.jpeg, self.manifest.input_size)
            if image is None:
                self.stats.undecodable += 1
                _UNDECODABLE.inc()
                continue
            images.append(image)
            kept.append(frame)
            factors.append(factor)
            # Boxes and zones are in the frame's own pixels, whatever size it was decoded at.
            sizes.append((image.shape[1] * factor, image.shape[0] * factor))
        batch = self.backend.prepare(images) if images else None
        self.stats.prepare_s += time.perf_counter() - started
        return _Prepared(kept, factors, sizes, batch)

    async def _send_violations(self, found: list[Violation]) -> list[asyncio.Future[RecordMetadata]]:
        sent = []
        for violation in found:
            key = violation.source_id.encode()
            sent.append(await self.producer.send(topics.VIOLATIONS, encode(violation), key=key))
            # After its violation, so the alert is normally stored before the clip is ready.
            request = clip_request(violation, self._settings)
            if request is not None:
                sent.append(await self.producer.send(topics.CLIP_REQUESTS, encode(request), key=key))
        return sent

    def _infer(self, prepared: _Prepared) -> list[np.ndarray]:
        """Run the model on a prepared chunk (inference thread: nothing else runs there)."""
        assert prepared.batch is not None
        started = time.perf_counter()
        outputs = self.backend.infer(prepared.batch)
        elapsed = time.perf_counter() - started
        self.stats.infer_s += elapsed
        metrics.vision_inference_seconds.observe(elapsed)
        return outputs

    def _confirm_chunk(self, prepared: _Prepared, outputs: list[np.ndarray]) -> list[Violation]:
        """Decode the model's output and confirm (confirmation thread: the confirmation state is
        only ever touched here, one chunk at a time, in order)."""
        assert prepared.batch is not None
        post_started = time.perf_counter()
        detections = self.backend.decode(outputs, prepared.batch)
        n = len(prepared.frames)
        metrics.vision_batch_frames.observe(n)
        _INFERRED.inc(n)
        self.stats.batches += 1
        self.stats.analysed += n
        self.stats.last_at = time.monotonic()
        if not self.stats.first_at:
            self.stats.first_at, self.stats.first_batch_frames = self.stats.last_at, n
        done = now_ms()
        violations = []
        for frame, found, factor, size in zip(
            prepared.frames, detections, prepared.factors, prepared.sizes, strict=True
        ):
            self.stats.frame_latency_ms.append(done - frame.meta.ts)
            if factor != 1 and len(found):
                found = Detections(found.xyxy * np.float32(factor), found.confidence, found.class_id)
            violations += self._confirm(frame, found, size)
        self.stats.post_s += time.perf_counter() - post_started
        return violations

    def _confirm(self, frame: _Frame, detections: Detections, size: tuple[int, int]) -> list[Violation]:
        camera = frame.camera
        hits: dict[str, Hit] = {}
        if len(detections):
            cls = detections.class_id
            code_index = self._class_code[cls]
            counts = (code_index >= 0) & (detections.confidence >= self._class_min_score[cls])
            holders = apply_held_rules(detections, counts, self._held) if self._held else None
            for index in np.unique(code_index[counts]):
                code = self._codes[int(index)]
                mask = counts & (code_index == index)
                mask[mask] = in_zones(detections.filter(mask), camera.zones, code, *size)
                if code in self._closed_only and not self._closed(camera, frame.meta.ts):
                    continue  # normal while the site is open: a frame without the finding
                if mask.any():
                    score = float(detections.confidence[mask].max())
                    if holders is not None:  # the evidence shows who holds it, too
                        mask |= holders[mask].any(axis=0)
                    hits[code] = Hit(frame.meta.ts, score, detections.filter(mask), frame.jpeg)
        confirmer = self._confirmers.get(camera.camera_id)
        if confirmer is None:
            s = self._settings
            confirmer = self._confirmers[camera.camera_id] = CameraConfirmer(
                k=s.vision_confirm_k, n=s.vision_confirm_n, cooldown_ms=int(s.vision_cooldown_s * 1000)
            )
        return [self._violation(camera, c) for c in confirmer.observe(frame.meta.ts, self._codes, hits)]

    def _violation(self, camera: Camera, confirmed: Confirmed) -> Violation:
        best = confirmed.best
        jpeg = best.frame_ref
        assert isinstance(jpeg, bytes)
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None  # it decoded moments ago, for inference
        labels = [self.manifest.classes[int(c)] for c in best.boxes.class_id]
        snapshot = self.evidence.put(annotate(image, best.boxes, labels))
        frame_sha = self.evidence.put(jpeg)
        kind = catalogue()[confirmed.code]
        detected = now_ms()
        self.stats.violations += 1
        _VIOLATIONS.inc()
        self.stats.violation_latency_ms.append(detected - best.ts)
        boxes = [
            {"class": label, "score": round(float(score), 3), "xyxy": [round(float(v), 1) for v in box]}
            for label, score, box in zip(labels, best.boxes.confidence, best.boxes.xyxy, strict=True)
        ]
        return Violation(
            violation_id=violation_id("camera", camera.camera_id, confirmed.code, confirmed.window_start),
            code=confirmed.code,
            state="active",
            enterprise_id=camera.enterprise_id,
            site_id=camera.site_id,
            source_kind="camera",
            source_id=camera.camera_id,
            window_start=confirmed.window_start,
            detected_at=detected,
            severity=kind.severity,
            detector=f"{self.name}/{self.manifest.name}",
            summary=f"{kind.name_en} on camera {camera.camera_id} (score {best.score:.2f}, "
            f"{confirmed.hits} of the last {self._settings.vision_confirm_n} frames)",
            evidence={
                "snapshot_sha256": snapshot,
                "frame_sha256": frame_sha,
                "frame_ts": best.ts,
                "model": self.manifest.name,
                "boxes": boxes,
                # The figures of the summary people read (vigil.summaries): k of the last n frames.
                "params": {
                    "variant": "vision",
                    "score": round(best.score, 3),
                    "hits": confirmed.hits,
                    "frames": self._settings.vision_confirm_n,
                    **self._hours_params(camera, confirmed.code),
                },
            },
        )

    def _closed(self, camera: Camera, ts: int) -> bool:
        return is_closed(self.sites.get(camera.site_id), ts, self._zone)

    def _hours_params(self, camera: Camera, code: str) -> dict[str, str]:
        """The opening hours an after-hours finding was judged by, for its summary."""
        hours = self.sites.get(camera.site_id)
        if code not in self._closed_only or hours is None or hours.opens is None or hours.closes is None:
            return {}
        return {"opens": hours.opens, "closes": hours.closes}


def percentile(samples: Sequence[int], q: float) -> float:
    if not samples:
        return float("nan")
    return float(np.percentile(np.asarray(samples), q))
