"""`vigil bench clips`: what video evidence costs, each figure beside a raw limit measured in the
same run.

1. **Ring memory** (benchmarks.clips_memory): one camera's ring of recent JPEG frames at the
   default settings (VIGIL_CLIP_BUFFER_S and its frame and byte bounds, a 2-fps camera), against
   the ring's byte bound; then the RSS a separate process gains holding N cameras' rings full,
   against the JPEG bytes those rings hold.
2. **Clip encoding**: `encode_clip` (ingest/camera/clips.py: decode the ring's JPEGs, draw the
   finding's box, VP8 WebM through OpenCV, read the file back) for one event's window, against
   cv2.VideoWriter writing the same, already decoded, frames alone; VP9 beside VP8 for the record.
3. **Live view** (benchmarks.clips_live): CPU per delivered frame for 1, 2 and 4 watchers, against
   plain Kafka moving the same frames to as many plain consumers.
4. **Camera-ingest loop, ring on and off**. Clips cost nothing per frame in the vision loop: the
   detector publishes one clip request per confirmed finding (a handful an hour, its cooldown),
   so benchmarks.vision's ratio is unchanged by them. The per-frame cost, if any, is in camera
   ingest: a pulled camera's reader keeps each packet of the stream in the clip ring as read
   (ingest/camera/reader.py). So the loop measured is the reader's per-packet work on the real
   stream's packets (decode every packet, convert and `process_frame` the sampled pictures), ring
   off and on, each against decoding and converting alone (the raw limit: what ingest must do
   whatever else), and the ring-on rate against the ring-off rate: the issue's bound, within 5%.

Frames are real footage: ../shared/video/vtest.avi (768x576, people walking) beside this checkout,
else the demo's photos, JPEG-encoded as camera ingest does (its quality and width settings).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from pydantic import SecretStr

from benchmarks.clips_live import LIVE_FPS, measure_live
from benchmarks.clips_memory import JpegFeed, PacketFeed, RingBounds, measure_memory
from benchmarks.report import Figure, Report, print_report
from ingest.camera.clips import CLIP_FOURCC, encode_clip, jpeg_images
from ingest.camera.reader import stream_decoder, stream_format, to_bgr
from ingest.camera.ring import PacketRing, StreamFormat
from ingest.camera.service import CameraIngest
from vigil.cameras import Camera
from vigil.machine import machine
from vigil.progress import Progress
from vigil.settings import Settings

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "video" / "vtest.avi"
PHOTOS = Path(__file__).resolve().parents[1] / "simulators" / "photos"
# The video is 10 fps; a camera sampled at the default 2 fps sees every fifth frame.
VIDEO_STRIDE = 5
CAMERA_FPS = 2.0  # register_camera's default sampling rate
# The finding's box drawn on the frames near it, as the detector's evidence carries it.
BOX = {"class": "no_mask", "score": 0.91, "xyxy": [310, 120, 420, 260]}
MIB = 1024 * 1024
SECTION_MEMORY, SECTION_ENCODE = "ring memory", "clip encoding"
SECTION_LIVE, SECTION_LOOP = "live view", "camera-ingest loop"


def source_jpegs(settings: Settings, count: int) -> list[bytes]:
    """`count` distinct camera frames as camera ingest would JPEG them."""
    images: list[np.ndarray] = []
    capture = cv2.VideoCapture(str(VIDEO)) if VIDEO.exists() else None
    try:
        i = 0
        while capture is not None and len(images) < count:
            ok, frame = capture.read()
            if not ok:
                break
            if i % VIDEO_STRIDE == 0:
                images.append(np.asarray(frame))
            i += 1
    finally:
        if capture is not None:
            capture.release()
    photos = sorted(PHOTOS.glob("*.jpg"))
    while len(images) < count and photos:  # no video beside this checkout: the demo's photos
        image = cv2.imread(str(photos[len(images) % len(photos)]), cv2.IMREAD_COLOR)
        assert image is not None
        images.append(np.asarray(image))
    if not images:
        raise RuntimeError(f"no frames: neither {VIDEO} nor {PHOTOS}/*.jpg")
    return [_jpeg(settings, images[i % len(images)]) for i in range(count)]


def _jpeg(settings: Settings, image: np.ndarray) -> bytes:
    # CameraIngest._encode: scaled to camera_max_width, at camera_jpeg_quality.
    height, width = image.shape[:2]
    if width > settings.camera_max_width:
        size = (settings.camera_max_width, round(height * settings.camera_max_width / width))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, settings.camera_jpeg_quality])
    assert ok
    return buf.tobytes()


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image)


# --- clip encoding -------------------------------------------------------------------------------


def _raw_write(images: list[np.ndarray], fps: float, fourcc: str) -> tuple[float, int]:
    """Seconds for cv2.VideoWriter to write the frames as WebM, and the file's size."""
    fd, path = tempfile.mkstemp(suffix=".webm", prefix="vigil-bench-clip-")
    os.close(fd)
    try:
        started = time.perf_counter()
        size = (images[0].shape[1], images[0].shape[0])
        writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"cv2.VideoWriter cannot write {fourcc} WebM here")
        for image in images:
            writer.write(image)
        writer.release()
        return time.perf_counter() - started, os.path.getsize(path)
    finally:
        os.unlink(path)


def measure_encode(jpegs: list[bytes], window_s: float, rounds: int, vp9: bool) -> tuple[list[Figure], int]:
    interval_ms = 1000 / CAMERA_FPS
    n = max(2, round(window_s * CAMERA_FPS))  # one event's clip: before + after at 2 fps
    frames = [(1_763_000_000_000 + round(i * interval_ms), jpegs[i % len(jpegs)]) for i in range(n)]
    images = [_decode(jpeg) for _, jpeg in frames]
    clip_s, raw_s = [], []
    raw_bytes = clip_bytes = 0
    with Progress(rounds * 2 + vp9, "clip encoding", unit="encodes") as progress:
        for _ in range(rounds):  # interleaved, so a neighbour's burst hits both sides alike
            started = time.perf_counter()
            clip = encode_clip(jpeg_images(frames), CAMERA_FPS, boxes=[BOX], box_ts=frames[n // 2][0])
            clip_s.append(time.perf_counter() - started)
            clip_bytes = len(clip.webm)
            progress.advance()
            seconds, raw_bytes = _raw_write(images, CAMERA_FPS, CLIP_FOURCC)
            raw_s.append(seconds)
            progress.advance()
        vp9_s = _raw_write(images, CAMERA_FPS, "VP90") if vp9 else None
        progress.advance(vp9)
    # The best round of each: the machine's noise only ever adds time.
    raw_ms, clip_ms = min(raw_s) * 1000, min(clip_s) * 1000
    size = f"{images[0].shape[1]}x{images[0].shape[0]}"
    figures = [
        Figure(SECTION_ENCODE, f"raw cv2.VideoWriter VP8, {n} frames {size} (limit)", raw_ms, "ms",
               note=f"best of {rounds}; {raw_bytes / 1024:,.0f} KiB WebM"),
        Figure(SECTION_ENCODE, "clip per event (encode_clip: decode, box, VP8, read back)", clip_ms, "ms",
               raw_ms, "raw VP8 writer", note=f"best of {rounds}; {clip_bytes / 1024:,.0f} KiB WebM, "
               f"{window_s:g} s at {CAMERA_FPS:g} fps"),
    ]  # fmt: skip
    if vp9_s is not None:
        figures.append(
            Figure(SECTION_ENCODE, "raw cv2.VideoWriter VP9, same frames", vp9_s[0] * 1000, "ms", raw_ms,
                   "raw VP8 writer", note=f"one round; {vp9_s[1] / 1024:,.0f} KiB: why clips are VP8")
        )  # fmt: skip
    return figures, n


# --- the camera-ingest loop, ring on and off -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamPackets:
    """A camera's stream as its reader demuxes it: the compressed packets and their format."""

    format: StreamFormat
    packets: list[tuple[bytes, bool]]  # (data, keyframe)
    fps: float


def stream_packets(limit: int) -> StreamPackets:
    """The first `limit` packets of ../shared/video/vtest.avi, else of an MJPEG stream made from
    the demo's photos (as an HTTP MJPEG camera sends them)."""
    if not VIDEO.exists():
        return _photo_stream(limit)
    with av.open(str(VIDEO)) as container:
        stream = container.streams.video[0]
        packets = [(bytes(p), p.is_keyframe) for p in container.demux(stream) if p.size]
        fps = float(stream.average_rate or 10)
        return StreamPackets(stream_format(stream), packets[:limit], fps)


def _photo_stream(limit: int) -> StreamPackets:
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        raise RuntimeError(f"no frames: neither {VIDEO} nor {PHOTOS}/*.jpg")
    jpegs = [p.read_bytes() for p in photos]
    image = _decode(jpegs[0])
    fmt = StreamFormat("mjpeg", image.shape[1], image.shape[0], b"")
    return StreamPackets(fmt, [(jpegs[i % len(jpegs)], True) for i in range(limit)], 10.0)


def _loop_rate(ingest: CameraIngest | None, camera: Camera, stream: StreamPackets) -> tuple[float, int, int]:
    """Sampled frames per second through the reader's per-packet work (one thread, as a camera's
    reader): every packet decoded, every `stride`-th picture converted and, with `ingest`, handed
    to process_frame, its packets kept in the clip ring when the camera has one. Returns the rate,
    the pictures sampled and how many of them the gate held back. `ingest` None: the raw limit."""
    decoder = stream_decoder(stream.format)
    stride = max(1, round(stream.fps / CAMERA_FPS))
    interval_ms = round(1000 / stream.fps)
    decoded = sampled = 0
    started = time.perf_counter()
    for i, (data, keyframe) in enumerate(stream.packets):
        ts = 1_763_000_000_000 + i * interval_ms
        if ingest is not None:
            ingest._keep_packet(camera, stream.format, ts, data, keyframe, None)
        for frame in decoder.decode(av.Packet(data)):
            decoded += 1
            if decoded % stride:
                continue
            sampled += 1
            image = to_bgr(frame)
            if ingest is not None:
                ingest.process_frame(camera, image, ts)
    elapsed = time.perf_counter() - started
    gated = ingest.channels[camera.camera_id].counters.gated if ingest is not None else 0
    return sampled / elapsed, sampled, gated


async def measure_loop(settings: Settings, stream: StreamPackets, rounds: int) -> list[Figure]:
    raw: list[float] = []
    rates: dict[bool, list[float]] = {False: [], True: []}
    sampled = gated = 0
    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-clips-") as tmp,
        Progress(rounds * 3, "camera-ingest loop", unit="runs") as progress,
    ):
        for r in range(rounds):
            rate, _, _ = await asyncio.to_thread(_loop_rate, None, _CAMERA, stream)
            raw.append(rate)
            progress.advance()
            for ring in (False, True) if r % 2 == 0 else (True, False):  # neither always goes first
                ingest = _ingest(settings, Path(tmp), ring)
                # process_frame hands sent frames to the event loop (call_soon_threadsafe), as on
                # a reader thread: the loop is this one; with no sender its queue fills and sheds.
                ingest._loop = asyncio.get_running_loop()
                rate, sampled, gated = await asyncio.to_thread(_loop_rate, ingest, _CAMERA, stream)
                rates[ring].append(rate)
                progress.advance()
    best_raw, off, on = max(raw), max(rates[False]), max(rates[True])
    static = gated / max(sampled, 1)
    mix = (
        f"{stream.format.codec} {stream.format.width}x{stream.format.height}, {len(stream.packets)} "
        f"packets at {stream.fps:g} fps, {sampled} sampled at {CAMERA_FPS:g} fps, {static:.0%} "
        f"of them static (gated); best of {rounds}"
    )
    added_ms = 1000 / on - 1000 / off  # CPU a sampled frame: one thread, so wall time is its CPU
    return [
        Figure(SECTION_LOOP, "raw decode of the camera's stream (limit)", best_raw, "frames/s", note=mix),
        Figure(SECTION_LOOP, "decode + process_frame, ring off (clips off)", off, "frames/s", best_raw,
               "raw decode"),
        Figure(SECTION_LOOP, "decode + process_frame, ring on (clips on)", on, "frames/s", best_raw,
               "raw decode", note="every packet kept in the ring as read, no encode"),
        Figure(SECTION_LOOP, "ring on against ring off (issue: within 5%)", on, "frames/s", off,
               "ring off", 0.95, "ratio", note=f"ring-on ratio {on / best_raw:.1%} vs ring-off "
               f"{off / best_raw:.1%} of the raw decode; the ring adds {added_ms:.3f} ms a sampled "
               f"frame, {added_ms * CAMERA_FPS / 1000:.3%} of a core per {CAMERA_FPS:g}-fps camera"),
    ]  # fmt: skip


def _ingest(settings: Settings, workdir: Path, ring: bool) -> CameraIngest:
    updates: dict[str, object] = {
        # Never connected: the loop measured is process_frame, which touches neither.
        "kafka_bootstrap": "127.0.0.1:9", "database_url": "postgresql://bench@127.0.0.1:9/bench",
        "evidence_dir": str(workdir / "evidence"),
        "clip_buffer_s": settings.clip_buffer_s if ring else 0.0,
    }  # fmt: skip
    if settings.demo:  # the demo's shared push token is required there, and unused here
        updates["camera_push_token"] = SecretStr(secrets.token_hex(16))
    ingest = CameraIngest(settings.model_copy(update=updates), serve_http=False)
    ingest.channel(_CAMERA)
    return ingest


# A pulled camera, as the readers' cameras are: its clip ring keeps packets.
_CAMERA = Camera("bench-loop", "bench", "bench", "rtsp://bench.invalid/stream", CAMERA_FPS, ())


# --- the whole -----------------------------------------------------------------------------------


async def measure(
    settings: Settings,
    *,
    cameras: int = 100,
    rounds: int = 3,
    loop_frames: int = 800,
    live_frames: int = 100,
    watchers: tuple[int, ...] = (1, 2, 4),
    window_s: float | None = None,
    vp9: bool = True,
) -> Report:
    report = Report(machine())
    window = window_s if window_s is not None else settings.clip_before_s + settings.clip_after_s
    bounds = RingBounds(int(settings.clip_buffer_s * 1000), settings.clip_buffer_max_frames,
                        settings.clip_buffer_max_bytes, CAMERA_FPS)  # fmt: skip
    # As many distinct frames as one ring holds, so a ring never holds the same picture twice.
    distinct = max(2, min(settings.clip_buffer_max_frames, round(settings.clip_buffer_s * CAMERA_FPS)))
    jpegs = await asyncio.to_thread(source_jpegs, settings, distinct)

    async def section(name: str, work: Awaitable[list[Figure]]) -> None:
        print(f"\n[{name}]", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            report.figures += await work
        except Exception as exc:  # one section failing must not cost the others' figures
            report.errors[name] = f"{type(exc).__name__}: {exc}"
        report.sections[name] = time.monotonic() - started

    stream = await asyncio.to_thread(stream_packets, loop_frames)
    await section(SECTION_MEMORY, _memory(bounds, jpegs, cameras, stream, settings))
    await section(SECTION_ENCODE, _encode(jpegs, window, rounds, vp9))
    await section(SECTION_LIVE, _live(settings, jpegs, live_frames, list(watchers)))
    await section(SECTION_LOOP, measure_loop(settings, stream, rounds))
    report.machine["load_at_end"] = os.getloadavg()
    return report


def _packet_feed(stream: StreamPackets, settings: Settings) -> PacketFeed:
    """A pulled camera's ring as camera ingest makes it (CameraIngest.channel), fed the stream."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-clips-") as tmp:
        ring = _ingest(settings, Path(tmp), ring=True).channels[_CAMERA.camera_id].ring
    assert isinstance(ring, PacketRing)
    return PacketFeed(stream.format, stream.packets, stream.fps, ring.max_age_ms, ring.max_packets,
                      ring.max_bytes, ring.min_interval_ms)  # fmt: skip


async def _memory(
    bounds: RingBounds, jpegs: list[bytes], cameras: int, stream: StreamPackets, settings: Settings
) -> list[Figure]:
    figures: list[Figure] = []
    fmt = stream.format
    for feed, kind in ((_packet_feed(stream, settings), "pulled"), (JpegFeed(bounds, jpegs), "pushed")):
        m = await asyncio.to_thread(measure_memory, feed, cameras)
        if isinstance(feed, PacketFeed):
            name, held = "one pulled camera's ring (its stream's packets)", "packet bytes held"
            note = (
                f"{m.frames} packets of {fmt.codec} {fmt.width}x{fmt.height} at {stream.fps:g} fps: "
                f"the last {feed.max_age_ms / 1000:g} s and the group of pictures reaching into it"
            )
        else:
            name, held = "one pushed camera's ring (its JPEGs)", "JPEG bytes held"
            note = (
                f"{m.frames} frames ({bounds.max_age_ms / 1000:g} s at {bounds.fps:g} fps) of "
                f"{m.ring_bytes / max(m.frames, 1) / 1024:,.0f} KiB"
            )
        figures += [
            Figure(SECTION_MEMORY, name, m.ring_bytes / MIB, "MiB", m.bound_bytes / MIB,
                   "the ring's byte bound", note=note),
            Figure(SECTION_MEMORY, f"RSS growth of a process holding {m.cameras} {kind} cameras' rings",
                   m.rss_growth / MIB, "MiB", m.held_bytes / MIB, held,
                   note=f"child process RSS {m.rss_before / MIB:,.0f} → {m.rss_full / MIB:,.0f} MiB; "
                   f"{m.rss_growth / m.cameras / MIB:,.2f} MiB a camera"),
        ]  # fmt: skip
    return figures


async def _encode(jpegs: list[bytes], window_s: float, rounds: int, vp9: bool) -> list[Figure]:
    figures, _ = await asyncio.to_thread(measure_encode, jpegs, window_s, rounds, vp9)
    return figures


async def _live(settings: Settings, jpegs: list[bytes], frames: int, watchers: list[int]) -> list[Figure]:
    stream = [jpegs[i % len(jpegs)] for i in range(frames)]
    runs = await measure_live(settings, stream, watchers)
    return [
        Figure(SECTION_LIVE, f"{r.watchers} watcher(s): CPU per delivered frame", r.cpu_ms, "ms",
               r.raw_cpu_ms, f"plain Kafka, {r.watchers} consumer(s)",
               note=f"this process {r.process_ms:.2f} + broker {r.broker_ms:.2f} ms; delivered "
               f"{r.delivered}/{r.frames * r.watchers} (raw {r.raw_delivered}) at {LIVE_FPS:g} fps")
        for r in runs
    ]  # fmt: skip


async def run_clips_bench(settings: Settings, args: argparse.Namespace) -> int:
    watchers = tuple(int(w) for w in str(args.watchers).split(",") if w.strip())
    report = await measure(
        settings, cameras=args.cameras, rounds=args.rounds, loop_frames=args.loop_frames,
        live_frames=args.live_frames, watchers=watchers, vp9=args.vp9,
    )  # fmt: skip
    print_report(report)
    if args.json:
        await asyncio.to_thread(Path(args.json).write_bytes, report.to_json())
        print(f"report written to {args.json}")
    return 1 if report.errors else 0
