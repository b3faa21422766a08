"""Event clips on camera ingest's side: the rings' bounds (a pushed camera's JPEGs, a pulled
camera's packets, whole groups of pictures), the WebM encoder (decoded back with OpenCV), clips
decoded from a real stream's packets, and the truncation rule."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from ingest.camera.clips import ClipError, encode_clip, is_truncated, jpeg_images, packet_images
from ingest.camera.reader import stream_format
from ingest.camera.ring import FrameRing, PacketRing, StreamFormat
from simulators.camera import KitchenScene, Script
from tests.rtsp import render_h264

T0 = 1_800_000_000_000


def jpeg(i: int, size: tuple[int, int] = (320, 240)) -> bytes:
    image = np.full((size[1], size[0], 3), (i * 37) % 255, np.uint8)
    cv2.putText(image, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 255, 0), 3)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def decode_webm(data: bytes) -> tuple[int, float]:
    fd, path = tempfile.mkstemp(suffix=".webm")
    try:
        os.write(fd, data)
        os.close(fd)
        cap = cv2.VideoCapture(path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        return n, fps
    finally:
        os.unlink(path)


def test_ring_is_bounded_by_age_count_and_bytes():
    frame = jpeg(1)
    by_age = FrameRing(max_age_ms=5000, max_frames=1000, max_bytes=10**9)
    for i in range(100):
        by_age.append(T0 + i * 500, frame)
    assert len(by_age) == 11 and by_age.window(0, T0 * 2)[0][0] == T0 + 89 * 500
    by_count = FrameRing(max_age_ms=10**9, max_frames=7, max_bytes=10**9)
    for i in range(100):
        by_count.append(T0 + i, frame)
    assert len(by_count) == 7
    by_bytes = FrameRing(max_age_ms=10**9, max_frames=1000, max_bytes=len(frame) * 3 + 1)
    for i in range(100):
        by_bytes.append(T0 + i, frame)
    assert len(by_bytes) == 3 and by_bytes.nbytes <= len(frame) * 3 + 1
    by_bytes.append(T0 + 1000, b"x" * (len(frame) * 4))  # larger than the whole budget: not kept
    assert by_bytes.last_ts() == T0 + 99
    by_bytes.append(T0 + 50, frame)  # out of order: a clip plays forwards only
    assert by_bytes.last_ts() == T0 + 99


def test_a_clip_decodes_at_the_sampling_rate_with_boxes():
    fps = 2.0
    frames = [(T0 + i * 500, jpeg(i)) for i in range(21)]  # 10 s at 2 fps
    boxes = [{"class": "no_mask", "score": 0.9, "xyxy": [10, 10, 100, 100]}, {"xyxy": "bad"}]
    clip = encode_clip(jpeg_images(frames), fps, boxes=boxes, box_ts=T0 + 5000)
    assert clip.webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    n, read_fps = decode_webm(clip.webm)
    assert n >= 20 * 0.8 and abs(read_fps - fps) < 0.1
    assert 10_000 <= clip.duration_ms <= 11_000


def test_a_gap_is_held_so_the_clip_plays_in_real_time_and_an_end_gap_truncates():
    frames = [(T0, jpeg(0)), (T0 + 500, jpeg(1)), (T0 + 4000, jpeg(2))]  # 3 s without frames
    clip = encode_clip(jpeg_images(frames), 2.0)
    assert clip.frames == 9 and clip.duration_ms == 4500
    stamps = [ts for ts, _ in frames]
    assert not is_truncated(stamps, T0, T0 + 4000, 2.0)
    assert is_truncated(stamps, T0, T0 + 10_000, 2.0)  # the camera stopped mid-clip
    assert is_truncated(stamps, T0 - 5000, T0 + 4000, 2.0)  # started too late for the "before"
    assert is_truncated([], T0, T0, 2.0)


def test_nothing_decodable_is_a_clip_error():
    for frames in ([], [(T0, b"not a jpeg")]):
        try:
            encode_clip(jpeg_images(frames), 2.0)
        except ClipError:
            continue
        raise AssertionError("expected a ClipError")


# --- a pulled camera's packets -------------------------------------------------------------------

FMT = StreamFormat("h264", 640, 480, b"\x01sps-pps")


def gops(ring: PacketRing, start: int, groups: int, *, size: int = 100, per_group: int = 4, fmt=FMT) -> int:
    """Appends `groups` groups of pictures (a keyframe, then `per_group - 1` others), one packet
    every 100 ms from `start`; returns the time after the last."""
    ts = start
    for _ in range(groups):
        for i in range(per_group):
            ring.append(fmt, ts, b"p" * size, i == 0)
            ts += 100
    return ts


def test_a_packet_ring_starts_at_a_keyframe_and_drops_whole_groups():
    ring = PacketRing(max_age_ms=10**9, max_packets=10, max_bytes=10**9)
    ring.append(FMT, T0, b"p" * 100, False)  # before the stream's first keyframe: undecodable
    assert len(ring) == 0
    gops(ring, T0 + 100, 3)  # 12 packets: the first group of 4 goes, whole
    assert len(ring) == 8 and ring.nbytes == 800
    window = ring.window(0, T0 * 2)
    assert window is not None and window.packets[0].keyframe and window.packets[0].ts_ms == T0 + 500
    by_bytes = PacketRing(max_age_ms=10**9, max_packets=10**6, max_bytes=1000)
    gops(by_bytes, T0, 5)
    assert (
        by_bytes.nbytes <= 1000 and len(by_bytes) % 4 == 0 and by_bytes.window(0, T0 * 2).packets[0].keyframe
    )


def test_a_packet_ring_keeps_the_group_that_reaches_into_its_age():
    ring = PacketRing(max_age_ms=1000, max_packets=10**6, max_bytes=10**9)
    end = gops(ring, T0, 10, per_group=4)  # groups of 400 ms; the newest packet at end - 100
    window = ring.window(0, T0 * 2)
    assert window is not None
    first = window.packets[0].ts_ms
    # The oldest kept group starts at or before the age bound, and the next one after it.
    assert first <= end - 100 - 1000 < first + 400


def test_a_clip_window_starts_at_the_last_keyframe_before_it():
    ring = PacketRing(max_age_ms=10**9, max_packets=10**6, max_bytes=10**9)
    gops(ring, T0, 5)  # keyframes at T0, +400, +800, +1200, +1600
    window = ring.window(T0 + 1000, T0 + 1500)
    assert window is not None
    assert window.packets[0].ts_ms == T0 + 800 and window.packets[0].keyframe
    assert window.packets[-1].ts_ms == T0 + 1500
    assert window.stamps() == [T0 + 1000 + i * 100 for i in range(6)]  # the lead-in is not the window's
    assert ring.window(T0 + 5000, T0 + 6000) is None  # nothing kept there


def test_a_reconnect_waits_for_a_keyframe_and_a_new_format_starts_afresh():
    ring = PacketRing(max_age_ms=10**9, max_packets=10**6, max_bytes=10**9)
    ts = gops(ring, T0, 2)
    again = StreamFormat("h264", 640, 480, b"\x01sps-pps")  # the same stream, a new connection
    ring.append(again, ts, b"p" * 100, False)  # mid-group after the gap: no keyframe to decode from
    assert len(ring) == 8
    ring.append(again, ts + 100, b"p" * 100, True)
    assert len(ring) == 9
    bigger = StreamFormat("h264", 1280, 720, b"\x01other")
    ring.append(bigger, ts + 200, b"p" * 100, True)  # another size: the old packets cannot share a clip
    assert len(ring) == 1 and ring.nbytes == 100


def h264_packets(seconds: float, fps: int = 8) -> tuple[StreamFormat, list[tuple[bytes, bool]]]:
    """A real H.264 stream (the simulator's kitchen through libx264, as tests/rtsp.py serves it),
    demuxed as camera ingest's reader does."""
    scene = KitchenScene(Script.parse([]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "camera.mp4"
        render_h264(scene, path, fps=fps, seconds=seconds)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream_format(stream), [
                (bytes(p), p.is_keyframe) for p in container.demux(stream) if p.size
            ]


def test_a_clip_from_a_real_h264_stream_decodes_at_the_sampling_rate():
    fmt, packets = h264_packets(12.0)
    ring = PacketRing(max_age_ms=20_000, max_packets=10**4, max_bytes=8 << 20)
    for i, (data, key) in enumerate(packets):
        ring.append(fmt, T0 + i * 125, data, key)  # 8 fps
    start, end = T0 + 3000, T0 + 9000  # not on a keyframe (every 2 s): the decode starts before it
    window = ring.window(start, end)
    assert window is not None and window.packets[0].ts_ms == T0 + 2000 and window.packets[0].keyframe
    images = list(packet_images(window, 2.0))
    assert [ts for ts, _ in images] == [start + i * 500 for i in range(13)]
    assert all(image.shape == (480, 640, 3) for _, image in images)
    clip = encode_clip(
        images, 2.0, boxes=[{"class": "no_mask", "xyxy": [10, 10, 100, 100]}], box_ts=start + 3000
    )
    n, fps = decode_webm(clip.webm)
    assert n == 13 and abs(fps - 2.0) < 0.1 and clip.duration_ms == 6500
    assert not is_truncated(window.stamps(), start, end, 2.0)


def test_an_intra_only_stream_is_kept_at_the_sampling_interval():
    mjpeg = StreamFormat("mjpeg", 640, 480, b"")
    ring = PacketRing(max_age_ms=10**9, max_packets=10**6, max_bytes=10**9, min_interval_ms=450)
    for i in range(50):  # 5 s of a 10-fps MJPEG camera: every picture a keyframe
        ring.append(mjpeg, T0 + i * 100, b"j" * 100, True)
    window = ring.window(0, T0 * 2)
    assert window is not None and [p.ts_ms - T0 for p in window.packets] == list(range(0, 5000, 500))
    h264 = PacketRing(max_age_ms=10**9, max_packets=10**6, max_bytes=10**9, min_interval_ms=450)
    gops(h264, T0, 3)  # predicted pictures: every packet is needed by the next
    assert len(h264) == 12


def test_pictures_of_a_stream_with_b_frames_keep_their_own_times():
    """With B-frames the decoder returns a picture after later packets: each is stamped with its
    own packet's time (by pts), not the time of the packet that happened to release it."""
    scene = KitchenScene(Script.parse([]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "camera.mp4"
        render_h264(scene, path, fps=8, seconds=6.0, b_frames=3)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fmt = stream_format(stream)
            packets = [(bytes(p), p.is_keyframe, p.pts) for p in container.demux(stream) if p.size]
    assert any(pts is not None and i and pts < packets[i - 1][2] for i, (_, _, pts) in enumerate(packets))
    ring = PacketRing(max_age_ms=20_000, max_packets=10**4, max_bytes=8 << 20)
    for i, (data, key, pts) in enumerate(packets):
        ring.append(fmt, T0 + i * 125, data, key, pts)  # arriving at 8 fps, in decoding order
    window = ring.window(T0, T0 + 6000)
    assert window is not None
    stamps = [ts for ts, _ in packet_images(window, 8.0)]
    # In display order, one picture every 125 ms from the keyframe: the stream's own clock, not
    # the order the decoder happened to return them in (the last ones are held back by the clamp
    # to "now" only if they were stamped ahead of their packets).
    assert len(stamps) >= len(packets) - 3
    assert stamps == [T0 + i * 125 for i in range(len(stamps))]
