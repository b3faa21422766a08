"""Pulling frames from one camera: a PyAV (FFmpeg) demuxer and decoder on its own thread, sampled
at the camera's rate, reconnected with backoff when the stream drops, looped when the source is a
video file.

Every packet the stream carries is decoded (later pictures are predicted from earlier ones), but
only a sampled picture is converted to BGR and handed to `on_frame` (gating, tamper checks,
encoding, the hand-off to Kafka: the service's business). Each packet also goes, as read, to
`on_packet`: the camera's clip ring keeps the stream's own compressed packets, so clips cost
nothing per frame (ingest/camera/ring.py). Demuxing and decoding are blocking C code that releases
the GIL, so each camera gets a thread and threads overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import av
import av.error
import cv2
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import VideoReformatter

from ingest.camera.ring import PictureClock, StreamFormat
from vigil.cameras import Camera

log = logging.getLogger(__name__)

# Reconnect backoff: first retry soon (a blip), then doubling to a ceiling that still notices a
# camera coming back within half a minute without hammering a dead host.
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
# FFmpeg's open and read time-outs; without them a dead RTSP host blocks a read for minutes.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
# RTSP over TCP (interleaved), as NVRs default to: UDP loses packets on a busy network, and a
# lost packet smears every picture until the next keyframe.
RTSP_OPTIONS = {"rtsp_transport": "tcp"}
# A video file that reports no frame rate is paced as if it were 25 fps.
DEFAULT_FILE_FPS = 25.0
# A packet the decoder refuses is skipped; this many in a row means the stream is not video we
# can read, and it is reopened (with backoff) rather than spun on.
MAX_BAD_PACKETS = 100

FrameCallback = Callable[[Camera, np.ndarray, int], object]  # its result is not used
# camera, format, ts, data, keyframe, pts
PacketCallback = Callable[[Camera, StreamFormat, int, bytes, bool, int | None], None]


@dataclass(slots=True)
class ReaderStats:
    """Counters a reader thread writes and the service reads (single ints: GIL-atomic)."""

    connects: int = 0
    disconnects: int = 0
    sampled: int = 0
    bad_packets: int = 0
    last_frame_at: float = field(default=0.0)  # time.time() of the last sampled frame
    last_error: str = ""


# Full-range (JPEG) luma and chroma onto the limited range OpenCV's I420 conversion expects.
_Y_TO_LIMITED = np.clip(np.round(16 + np.arange(256) * 219 / 255), 0, 255).astype(np.uint8)
_C_TO_LIMITED = np.clip(np.round(128 + (np.arange(256) - 128) * 224 / 255), 0, 255).astype(np.uint8)


def to_bgr(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """A decoded picture as OpenCV's BGR array, converted by OpenCV from the planes as decoded for
    planar 4:2:0 (nearly every camera's H.264; full-range `yuvj420p` through a lookup table onto
    the limited range OpenCV assumes), about 4x faster than swscale; anything else by swscale,
    through `reformatter` (the caller's own, never PyAV's per-thread one: swscale's slice threads
    behind a per-thread reformatter hang a forked child that frees it before exec, and services
    and tests start brokers as child processes)."""
    name = frame.format.name
    if name in ("yuv420p", "yuvj420p") and frame.width % 2 == 0 and frame.height % 2 == 0:
        planes = np.asarray(frame.to_ndarray(), dtype=np.uint8)
        if name == "yuvj420p":
            h = frame.height
            luma, chroma = cv2.LUT(planes[:h], _Y_TO_LIMITED), cv2.LUT(planes[h:], _C_TO_LIMITED)
            planes = np.concatenate((luma, chroma))
        return np.asarray(cv2.cvtColor(planes, cv2.COLOR_YUV2BGR_I420))
    return (reformatter or VideoReformatter()).reformat(frame, format="bgr24").to_ndarray()


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """An MJPEG packet (a whole JPEG) decoded by OpenCV's libjpeg-turbo: an MJPEG camera's
    pictures need no decoder state, so only the sampled ones are decoded at all."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image)


def stream_format(stream: av.VideoStream) -> StreamFormat:
    ctx = stream.codec_context
    tick = float(stream.time_base) * 1000 if stream.time_base else 0.0
    return StreamFormat(ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b""), tick)


def stream_decoder(fmt: StreamFormat) -> VideoCodecContext:
    """A fresh decoder for packets of a stream of `fmt`, away from its container (a clip's ring)."""
    decoder = cast(VideoCodecContext, av.CodecContext.create(fmt.codec, "r"))
    decoder.width, decoder.height = fmt.width, fmt.height
    if fmt.extradata:
        decoder.extradata = fmt.extradata
    return decoder


class CameraReader:
    def __init__(
        self, camera: Camera, on_frame: FrameCallback, on_packet: PacketCallback | None = None
    ) -> None:
        self.camera = camera
        self._on_frame = on_frame
        self._on_packet = on_packet
        self._stop = threading.Event()
        self.stats = ReaderStats()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the thread to end and wait for it; a read blocked in FFmpeg ends at its time-out."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stop.is_set():
            container = self._open()
            if container is None:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.stats.connects += 1
            try:
                if self._pump(container):
                    backoff = BACKOFF_MIN_S  # it delivered frames: the next drop is a fresh blip
            except (av.error.FFmpegError, OSError) as exc:  # the stream broke (network, server)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("camera %s: %s", self.camera.camera_id, self.stats.last_error)
            except Exception as exc:  # a bug in a callback must not end the camera for good
                log.exception("camera %s: frame handling failed", self.camera.camera_id)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                container.close()
            if not self._stop.is_set():
                self.stats.disconnects += 1
                log.warning("camera %s: stream ended; reconnecting in %.1fs", self.camera.camera_id, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _open(self) -> av.container.InputContainer | None:
        source = self.camera.source
        options = RTSP_OPTIONS if source.lower().startswith("rtsp") else {}
        try:
            container = av.open(source, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.error.FFmpegError, OSError) as exc:
            self.stats.last_error = f"cannot open {self._redacted_source()}: {type(exc).__name__}"
            log.warning("camera %s: %s", self.camera.camera_id, self.stats.last_error)
            return None
        if not container.streams.video:
            container.close()
            self.stats.last_error = f"no video stream in {self._redacted_source()}"
            log.warning("camera %s: %s", self.camera.camera_id, self.stats.last_error)
            return None
        return container

    def _redacted_source(self) -> str:
        # RTSP URLs often carry credentials; logs and counters must not.
        source = self.camera.source
        if "@" in source and "://" in source:
            scheme, rest = source.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return source

    def _pump(self, container: av.container.InputContainer) -> bool:
        """Read until the stream ends or we are stopped; True if any frame was delivered."""
        stream = container.streams.video[0]
        fmt = stream_format(stream)
        period = 1.0 / self.camera.sample_fps
        is_file = self.camera.is_file
        rate = float(stream.average_rate or stream.guessed_rate or 0) if is_file else 0.0
        file_period = 1.0 / (rate or DEFAULT_FILE_FPS)
        next_sample = next_file_frame = time.monotonic()
        delivered = False
        rewinds_without_frames = bad_in_a_row = 0
        packets = container.demux(stream)
        clock = PictureClock(fmt.ms_per_tick)  # when each picture was taken (B-frames, bursts)
        mjpeg = fmt.codec == "mjpeg"
        reformatter = VideoReformatter()  # this reader's own (see to_bgr)
        while not self._stop.is_set():
            packet = next(packets, None)
            if packet is None:  # the end of the stream
                if is_file and rewinds_without_frames < 2:
                    container.seek(0)  # loop the demo video, decoding afresh from its start
                    stream.codec_context.flush_buffers()
                    packets = container.demux(stream)
                    clock = PictureClock(fmt.ms_per_tick)
                    rewinds_without_frames += 1
                    continue
                return delivered
            if packet.size == 0:
                # The demuxer's flush packet at the end, or an empty chunk (an AVI's dropped
                # frame): nothing to keep, and decoding it would end the decoder's stream.
                continue
            if is_file:
                # A file is played at its own speed, as a live camera would deliver it.
                delay = next_file_frame - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                next_file_frame = max(next_file_frame + file_period, time.monotonic() - 1.0)
            ts_ms = time.time_ns() // 1_000_000
            pts = packet.pts
            clock.packet(ts_ms, packet.is_keyframe, pts)
            data = bytes(packet)
            if self._on_packet is not None:
                self._on_packet(self.camera, fmt, ts_ms, data, packet.is_keyframe, pts)
            pictures: list[tuple[np.ndarray, int]] = []
            if mjpeg:
                # Every packet a whole JPEG: only a sampled one is decoded, by OpenCV.
                if time.monotonic() >= next_sample:
                    image = decode_jpeg(data)
                    if image is None:
                        bad_in_a_row += 1
                    else:
                        bad_in_a_row = 0
                        pictures.append((image, clock.picture(pts, ts_ms)))
            else:
                try:
                    frames = packet.decode()
                    bad_in_a_row = 0
                except av.error.InvalidDataError:
                    frames = []
                    bad_in_a_row += 1
                for frame in frames:
                    if time.monotonic() >= next_sample:  # decoded (later pictures need it), sampled
                        pictures.append((to_bgr(frame, reformatter), clock.picture(frame.pts, ts_ms)))
            if bad_in_a_row:
                self.stats.bad_packets += 1
                if bad_in_a_row >= MAX_BAD_PACKETS:
                    raise av.error.InvalidDataError(0, f"{bad_in_a_row} packets in a row did not decode")
            for image, taken in pictures:
                now = time.monotonic()
                if now < next_sample:
                    continue
                rewinds_without_frames = 0
                # Keep to the schedule, but never try to catch up a backlog after a stall.
                next_sample = max(next_sample + period, now)
                self.stats.sampled += 1
                self.stats.last_frame_at = time.time()
                delivered = True
                self._on_frame(self.camera, image, taken)
        return delivered
