"""Event clips on camera ingest's side: the frame ring's bounds, the WebM encoder (decoded back
with OpenCV) and the truncation rule."""

from __future__ import annotations

import os
import tempfile

import cv2
import numpy as np

from ingest.camera.clips import ClipError, encode_clip, is_truncated
from ingest.camera.ring import FrameRing

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
    clip = encode_clip(frames, fps, boxes=boxes, box_ts=T0 + 5000)
    assert clip.webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a Matroska/WebM file
    n, read_fps = decode_webm(clip.webm)
    assert n >= 20 * 0.8 and abs(read_fps - fps) < 0.1
    assert 10_000 <= clip.duration_ms <= 11_000


def test_a_gap_is_held_so_the_clip_plays_in_real_time_and_an_end_gap_truncates():
    frames = [(T0, jpeg(0)), (T0 + 500, jpeg(1)), (T0 + 4000, jpeg(2))]  # 3 s without frames
    clip = encode_clip(frames, 2.0)
    assert clip.frames == 9 and clip.duration_ms == 4500
    assert not is_truncated(frames, T0, T0 + 4000, 2.0)
    assert is_truncated(frames, T0, T0 + 10_000, 2.0)  # the camera stopped mid-clip
    assert is_truncated(frames, T0 - 5000, T0 + 4000, 2.0)  # started too late for the "before"
    assert is_truncated([], T0, T0, 2.0)


def test_nothing_decodable_is_a_clip_error():
    for frames in ([], [(T0, b"not a jpeg")]):
        try:
            encode_clip(frames, 2.0)
        except ClipError:
            continue
        raise AssertionError("expected a ClipError")
