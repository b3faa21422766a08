"""The demo's photo cameras raise no CAMERA_TAMPERED (issue 16.8): three minutes of each demo
camera (one per bundled photo, each showing its photo steadily), sampled at its registered rate,
JPEG-encoded as its MJPEG server serves it and decoded as camera ingest decodes it, through camera
ingest's own per-camera channel (motion gate and tamper detector) with the demo's tamper hold.
Scene time is driven faster than real time: the channel judges frames by the timestamps it is
given, so three minutes take a few seconds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ingest.camera.channel import CameraChannel
from simulators.kitchen_cameras import SAMPLE_FPS, demo_cameras, demo_scene
from vigil.cameras import Camera
from vigil.settings import Settings

DURATION_S = 180
JPEG_QUALITY = 80  # the demo's MjpegServer default


@pytest.mark.parametrize("camera", range(demo_cameras(photos=True)))
def test_three_minutes_of_a_demo_camera_raise_no_tamper(camera: int) -> None:
    settings = Settings()
    scene = demo_scene(camera, photos=True)
    channel = CameraChannel(
        Camera(f"demo-kitchen-cam-{camera + 1}", "ent", "site", "http://127.0.0.1/", SAMPLE_FPS, ()),
        keyframe_interval_s=settings.camera_keyframe_interval_s,
        tamper_hold_s=settings.camera_tamper_hold_s,
    )
    t0 = 1_763_000_000_000
    raised = []
    for k in range(int(DURATION_S * SAMPLE_FPS)):
        t = k / SAMPLE_FPS
        ok, jpeg = cv2.imencode(".jpg", scene.render(t), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        frame = cv2.imdecode(np.frombuffer(jpeg.tobytes(), np.uint8), cv2.IMREAD_COLOR)
        _, state, _ = channel.analyse(frame, t0 + round(t * 1000))
        if state.tampered:
            raised.append((t, state.kind, state.detail))
    assert raised == [], raised[:3]
