"""The reader's conversion of decoded pictures to OpenCV's BGR: the fast path (OpenCV's I420
conversion, limited range) only for limited-range 4:2:0, swscale for the rest, so an MJPEG
camera's full-range pictures keep their colours (the colour-marker model and the gate see them)."""

from __future__ import annotations

import av
import cv2
import numpy as np

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
    packets = [*encoder.encode(av.VideoFrame.from_ndarray(image, format="bgr24")), *encoder.encode(None)]
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
    assert np.abs(fast - frame.to_ndarray(format="bgr24").astype(int)).mean() < 2.0
    assert np.abs(fast - original.astype(int)).mean() < 4.0
