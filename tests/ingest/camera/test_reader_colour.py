"""The reader's conversion of decoded pictures to OpenCV's BGR: the fast path (OpenCV's I420
conversion, limited range) only for limited-range 4:2:0, swscale for the rest, so an MJPEG
camera's full-range pictures keep their colours (the colour-marker model and the gate see them);
and never through PyAV's per-thread reformatter, which hung child processes started beside a
camera thread."""

from __future__ import annotations

import subprocess
import sys

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from ingest.camera.reader import to_bgr
from simulators.camera import KitchenScene, Script


def decoded(codec: str, image: np.ndarray, **options: str) -> tuple[av.VideoFrame, np.ndarray]:
    """One picture through a real encoder and decoder: the decoded frame and the image it was."""
    if codec == "mjpeg":
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        decoder = av.CodecContext.create("mjpeg", "r")
        (frame,) = decoder.decode(av.Packet(jpeg.tobytes()))
        return frame, np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
    encoder.options = options
    # I420 made by OpenCV: nothing here may go through PyAV's per-thread reformatter (see below).
    yuv = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
    packets = [*encoder.encode(yuv), *encoder.encode(None)]
    decoder = av.CodecContext.create("h264" if codec == "libx264" else codec, "r")
    frames = [f for p in [*packets, None] for f in decoder.decode(p)]  # None: flush
    return frames[0], image


def test_full_range_mjpeg_keeps_its_colours_and_h264_takes_the_fast_path():
    image = KitchenScene(Script.parse([])).render(3.0)
    frame, reference = decoded("mjpeg", image)
    assert frame.format.name == "yuvj420p"
    assert np.abs(to_bgr(frame).astype(int) - reference.astype(int)).mean() < 2.0
    frame, original = decoded("libx264", image, crf="18")
    assert frame.format.name == "yuv420p"
    fast = to_bgr(frame).astype(int)
    swscale = VideoReformatter().reformat(frame, format="bgr24").to_ndarray()
    assert np.abs(fast - swscale.astype(int)).mean() < 2.0
    assert np.abs(fast - original.astype(int)).mean() < 4.0


# A camera thread converts pictures (alive, as a reader is) while the process starts a child
# the way shell.infra starts brokers (preexec_fn: Python runs in the child before exec). PyAV's
# per-thread swscale reformatter, freed in the child, waited for its slice threads for ever.
_FORK_BESIDE_A_CAMERA_THREAD = """
import threading, subprocess, av, numpy as np, cv2
from av.video.reformatter import VideoReformatter
from ingest.camera.reader import to_bgr
from shell.infra import die_with_parent
ok, jpeg = cv2.imencode(".jpg", np.full((480, 640, 3), 90, np.uint8))
converted, release = threading.Event(), threading.Event()
def camera():
    (frame,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg.tobytes()))
    to_bgr(frame)  # yuvj420p
    to_bgr(VideoReformatter().reformat(frame, format="yuv422p"))  # swscale's path
    converted.set()
    release.wait()
threading.Thread(target=camera, daemon=True).start()
converted.wait()
subprocess.run(["true"], preexec_fn=die_with_parent, check=True)
print("started")
"""


def test_a_child_process_starts_beside_a_camera_thread_that_converted_pictures():
    done = subprocess.run(
        [sys.executable, "-c", _FORK_BESIDE_A_CAMERA_THREAD], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "started", done.stderr[-2000:]
