"""`vigil bench vision`: the vision loop against the raw limit of the same model, in one run.

1. **Raw onnxruntime**: `session.run` on an already letterboxed batch, nothing else: the limit.
2. **Full loop**: JPEG frames of simulated kitchen cameras already on `vigil.frames.v1`; the vision
   detector consumes them, decodes, letterboxes, infers, post-processes and confirms, producing
   violations with evidence. Throughput from its first fetched frame to its last analysed one.
3. **Latency**: frames streamed in real time at half the loop's throughput; capture-to-analysed
   and capture-to-violation percentiles.
4. **Edge cost**: decode + motion gate + tamper check per sampled frame, and a JPEG encode per sent
   one, to size how many 2-fps cameras (80% static) one machine serves, ingest and detector both.

The same model, batch size and thread count are used in every step; the ratio is the figure that
holds on a noisy shared machine, the absolute numbers are this machine's today.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from detectors.vision.backends import load_backend
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest
from vigil.progress import Progress
from vigil.settings import Settings

# Long enough for a stable rate on a noisy machine, short enough for a run of a few minutes.
RAW_SECONDS = 5.0
LATENCY_SECONDS = 12.0
CAMERAS = 8  # frames from several cameras, so batches mix cameras as in production
STATIC_SHARE = 0.8  # the brief: 80% of a kitchen camera's sampled frames show nothing new
CAMERA_FPS = 2.0
STANDIN_WIDTH = 26


@dataclass(frozen=True, slots=True)
class VisionReport:
    model: str
    batch: int
    threads: int
    raw_fps: float
    raw_low: float  # the lower and higher of the two raw measurements: the machine's noise
    raw_high: float
    loop_fps: float
    model_fps: float  # frames / seconds inside the model's run, within the loop itself
    frame_p50_ms: float
    frame_p95_ms: float
    violation_p50_ms: float
    violation_p95_ms: float
    violations: int
    edge_ms_per_frame: float
    encode_ms_per_frame: float
    cameras_per_machine: float
    # Where a frame's milliseconds go in the loop (each stage on its own thread), and the CPU the
    # whole process spent per frame meanwhile (every thread: the model's, the stages', the loop's).
    stage_ms: dict[str, float]
    cpu_ms_per_frame: float

    @property
    def ratio(self) -> float:
        return self.loop_fps / self.raw_fps

    @property
    def in_loop_ratio(self) -> float:
        """The loop against the model's rate inside it: what the loop adds, free of the noise that
        separate measurements minutes apart pick up on a shared machine."""
        return self.loop_fps / self.model_fps


def _model(model: str | None, workdir: Path) -> ModelManifest:
    if model:
        return load_manifest(find_manifest(model))
    from models.build_sim_model import build_compute_model

    # A fixed yardstick, whichever model ships: the compute of YOLOv8n at 320x320 (about 2.2
    # GFLOPs a frame: width 26 in build_compute_model) with random weights. `--model kitchen`
    # measures the shipped model instead.
    return load_manifest(build_compute_model(workdir / "compute-standin.onnx", width=STANDIN_WIDTH))


def _frames(count: int) -> list[bytes]:
    from simulators.camera import DEMO_SCRIPT, KitchenScene

    scenes = [KitchenScene(DEMO_SCRIPT, seed=i, loop_s=120) for i in range(CAMERAS)]
    frames = []
    with Progress(count, "rendering frames", unit="frames") as progress:
        for i in range(count):
            # Spread over the script so the frames hold every scripted violation.
            image = scenes[i % CAMERAS].render(8 + (i * 0.37) % 90)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            frames.append(buf.tobytes())
            progress.advance()
    return frames


def effective_batch(manifest: ModelManifest, batch: int) -> int:
    """The batch the model really runs: an export with a fixed batch dimension (the shipped YOLOX
    is fixed at 1) takes that many frames whatever is asked, as in the detector itself."""
    backend = load_backend(manifest, intra_op_threads=1, max_batch=batch)
    try:
        return backend.batch_size
    finally:
        backend.close()


def measure_raw(manifest: ModelManifest, images: list[np.ndarray], batch: int, threads: int) -> float:
    backend = load_backend(manifest, intra_op_threads=threads or None, max_batch=batch)
    try:
        prepared = backend.prepare(images[:batch])
        runs = 0
        start = time.perf_counter()
        with Progress(0, "raw onnxruntime", unit="runs") as progress:
            while time.perf_counter() - start < RAW_SECONDS:
                backend.infer(prepared)
                runs += 1
                progress.advance()
        return runs * batch / (time.perf_counter() - start)
    finally:
        backend.close()


def measure_edge(images: list[np.ndarray], jpegs: list[bytes]) -> tuple[float, float]:
    """ms per sampled frame for decode + gate + tamper, and ms per JPEG encode of a sent frame."""
    from ingest.camera.channel import CameraChannel
    from vigil.cameras import Camera

    camera = Camera("bench", "bench", "bench", "push", CAMERA_FPS, ())
    channel = CameraChannel(camera, keyframe_interval_s=10, tamper_hold_s=10)
    n = min(len(jpegs), 200)
    start = time.perf_counter()
    for i in range(n):
        channel.analyse(_decode(jpegs[i]), 1_763_000_000_000 + i * 500)
    edge = (time.perf_counter() - start) * 1000 / n
    start = time.perf_counter()
    for i in range(n):
        cv2.imencode(".jpg", images[i % len(images)], [cv2.IMWRITE_JPEG_QUALITY, 85])
    encode = (time.perf_counter() - start) * 1000 / n
    return edge, encode


async def measure_loop(
    settings: Settings, manifest: ModelManifest, jpegs: list[bytes], batch: int, threads: int
) -> tuple[float, float, list[int], list[int], int, dict[str, float], float]:
    from aiokafka import AIOKafkaProducer

    from detectors.vision.service import VisionDetector
    from shell.infra import Infrastructure
    from vigil import topics
    from vigil.cameras import register_camera
    from vigil.db import make_pool, migrate
    from vigil.frames import FrameMeta
    from vigil.kafka import ensure_topics, now_ms

    infra = Infrastructure(settings.model_copy(update={"mode": "demo"}))
    s = await asyncio.to_thread(infra.start)
    try:
        database_url, bootstrap = s.database_url, s.kafka_bootstrap
        assert database_url and bootstrap
        s = s.model_copy(
            update={"vision_max_batch": batch, "vision_threads": threads, "vision_max_lag_s": 3600.0}
        )
        await migrate(database_url)
        await ensure_topics(bootstrap)
        # Two sets of cameras: the latency run must not fall inside the throughput run's cooldowns.
        cameras = [f"bench-cam-{i}" for i in range(2 * CAMERAS)]
        async with make_pool(database_url) as pool:
            for camera in cameras:
                await register_camera(
                    pool, enterprise_id="bench", site_id="bench", camera_id=camera, source="push"
                )
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, linger_ms=5)
        await producer.start()

        async def send(i: int, jpeg: bytes, *, second_set: bool = False) -> asyncio.Future[object]:
            camera = cameras[i % CAMERAS + (CAMERAS if second_set else 0)]
            meta = FrameMeta(camera, "bench", "bench", now_ms(), i, "motion")
            future: asyncio.Future[object] = await producer.send(
                topics.FRAMES, jpeg, key=meta.camera_id.encode(), headers=meta.headers()
            )
            return future

        try:
            # Throughput: everything on the topic first, so the broker's intake is not timed.
            with Progress(len(jpegs), "producing frames", unit="frames") as progress:
                for i, jpeg in enumerate(jpegs):
                    await send(i, jpeg)
                    progress.advance()
                await producer.flush()
            detector = VisionDetector(s, manifest=manifest)
            await detector.start()
            cpu_start = time.process_time()  # the model is loaded; idle until frames are assigned
            try:
                stats = detector.stats
                with Progress(len(jpegs), "full loop", unit="frames") as progress:
                    while stats.analysed < len(jpegs):
                        await asyncio.sleep(0.05)
                        progress.advance(stats.analysed - progress.done)
                loop_fps = (stats.analysed - stats.first_batch_frames) / (stats.last_at - stats.first_at)
                model_fps = stats.analysed / stats.infer_s
                cpu_ms = (time.process_time() - cpu_start) * 1000 / stats.analysed
                per = 1000 / stats.analysed
                stages = {"decode + letterbox": stats.prepare_s * per, "model": stats.infer_s * per,
                          "decode output + confirm": stats.post_s * per,
                          "the loop's wall time (1 / rate)": 1000 / loop_fps}  # fmt: skip
                # Latency: real-time stream at half the measured capacity.
                stats.frame_latency_ms.clear()
                stats.violation_latency_ms.clear()
                rate = loop_fps / 2
                total = int(rate * LATENCY_SECONDS)
                start = time.monotonic()
                with Progress(total, "latency (real-time stream)", unit="frames") as progress:
                    for i in range(total):
                        delay = start + i / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        await send(i, jpegs[i % len(jpegs)], second_set=True)
                        progress.advance()
                    await producer.flush()
                    deadline = time.monotonic() + 30
                    while len(stats.frame_latency_ms) < total and time.monotonic() < deadline:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)  # polling a counter another thread updates
                return (
                    loop_fps,
                    model_fps,
                    list(stats.frame_latency_ms),
                    list(stats.violation_latency_ms),
                    stats.violations,
                    stages,
                    cpu_ms,
                )
            finally:
                await detector.stop()
        finally:
            await producer.stop()
    finally:
        await asyncio.to_thread(infra.stop)


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image)


def _pct(samples: list[int], q: float) -> float:
    return float(np.percentile(samples, q)) if samples else float("nan")


async def measure(
    settings: Settings, *, model: str | None = None, batch: int = 8, frames: int = 400, threads: int = 0
) -> VisionReport:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        manifest = _model(model, Path(tmp))
        batch = await asyncio.to_thread(effective_batch, manifest, batch)
        jpegs = await asyncio.to_thread(_frames, frames)
        images = [_decode(j) for j in jpegs[: max(batch, 16)]]
        raw_before = await asyncio.to_thread(measure_raw, manifest, images, batch, threads)
        loop_fps, model_fps, frame_lat, violation_lat, violations, stages, cpu_ms = await measure_loop(
            settings.model_copy(update={"evidence_dir": str(Path(tmp) / "evidence")}),
            manifest, jpegs, batch, threads,
        )  # fmt: skip
        # The limit is measured before and after the loop and averaged: on a shared machine a
        # neighbour's burst during one measurement would otherwise skew the ratio.
        raw_after = await asyncio.to_thread(measure_raw, manifest, images, batch, threads)
        raw_fps = (raw_before + raw_after) / 2
        edge_ms, encode_ms = await asyncio.to_thread(measure_edge, images, jpegs)
    # Core-milliseconds one camera costs per second: every sampled frame is decoded and compared
    # at the edge; the non-static share is encoded, sent and analysed (the loop uses every core).
    sent_per_s = CAMERA_FPS * (1 - STATIC_SHARE)
    core_ms = CAMERA_FPS * edge_ms + sent_per_s * (encode_ms + 1000 * cores / loop_fps)
    return VisionReport(
        manifest.name, batch, threads, raw_fps, min(raw_before, raw_after), max(raw_before, raw_after),
        loop_fps, model_fps,
        _pct(frame_lat, 50), _pct(frame_lat, 95), _pct(violation_lat, 50), _pct(violation_lat, 95),
        violations, edge_ms, encode_ms, 1000 * cores / core_ms, stages, cpu_ms,
    )  # fmt: skip


async def run_vision_bench(settings: Settings, args: argparse.Namespace) -> int:
    report = await measure(
        settings, model=args.model, batch=args.batch, frames=args.frames, threads=args.threads
    )
    print_report(report, os.cpu_count() or 1)
    return 0


def print_report(r: VisionReport, cores: int) -> None:
    print()
    print(f"vigil bench vision — {platform.processor() or platform.machine()}, {cores} cores, "
          f"onnxruntime {onnxruntime.__version__}, model {r.model}, batch {r.batch}, "
          f"threads {r.threads or 'default'}")  # fmt: skip
    rows = [
        ("raw onnxruntime (limit)", f"{r.raw_fps:,.1f} frames/s",
         f"mean of before and after the loop: {r.raw_low:,.1f} and {r.raw_high:,.1f}"),
        ("full loop Kafka→violation", f"{r.loop_fps:,.1f} frames/s", f"{r.ratio:.1%} of raw"),
        ("model alone, inside the loop", f"{r.model_fps:,.1f} frames/s",
         f"loop at {r.in_loop_ratio:.1%} of it (same moments, same neighbours)"),
        ("loop per core", f"{r.loop_fps / cores:,.1f} frames/s", ""),
        ("frame latency p50 / p95", f"{r.frame_p50_ms:,.0f} / {r.frame_p95_ms:,.0f} ms", "at half capacity"),
        ("violation latency p50 / p95",
         f"{r.violation_p50_ms:,.0f} / {r.violation_p95_ms:,.0f} ms" if r.violations else "n/a",
         f"{r.violations} violations" if r.violations else "the model found nothing to confirm"),
        *((f"  ms/frame: {stage}", f"{ms:.2f} ms", "thread time (the stages overlap)" if i == 0 else "")
          for i, (stage, ms) in enumerate(r.stage_ms.items())),
        ("CPU per frame, detector process", f"{r.cpu_ms_per_frame:.2f} ms",
         "every thread, throughput run; the frame's CPU-seconds × 1000"),
        ("edge decode+gate+tamper", f"{r.edge_ms_per_frame:.2f} ms/frame", ""),
        ("edge JPEG encode (sent)", f"{r.encode_ms_per_frame:.2f} ms/frame", ""),
        ("2-fps cameras, 80% static", f"{r.cameras_per_machine:,.0f} per machine", "ingest + detector"),
    ]  # fmt: skip
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    print(f"  target (issue 22): loop ≥ 95% of raw — {'met' if r.ratio >= 0.95 else 'NOT met'}")
