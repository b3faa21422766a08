"""Cameras end to end on the real brokers and database: the simulator's MJPEG stream pulled by
camera ingest, frames on Kafka, the vision detector, the alert store, evidence through the API;
and camera ingest's own findings (tamper, offline), push endpoint and video-file sources."""

from __future__ import annotations

import asyncio
import hashlib
import time

import cv2
import httpx
import numpy as np
import pytest

from alerts.service import AlertService
from api.app import create_app
from detectors.vision.service import VisionDetector
from ingest.camera.service import CameraIngest
from simulators.camera import KitchenScene, Script, write_video
from simulators.mjpeg import MjpegServer
from tests.helpers import KafkaTail
from vigil.cameras import register_camera
from vigil.topics import DEADLETTER, FRAMES, VIOLATIONS

# Each test's cameras are disabled afterwards (tests/conftest.py), so later ingests pull no dead streams.
pytestmark = pytest.mark.usefixtures("retire_cameras")


def frame_record(record):
    return {
        "key": record.key.decode(),
        "headers": {k: v.decode() for k, v in record.headers},
        "size": len(record.value),
    }


async def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        await asyncio.sleep(0.2)


async def test_mjpeg_camera_to_alert_with_evidence_served_by_the_api(settings, pool, uid):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"kitchen-{uid}"
    scene = KitchenScene(Script.parse([{"kind": "no_mask", "start_s": 2, "end_s": 600, "worker": 0}]))
    fast = settings.model_copy(update={"camera_keyframe_interval_s": 1.0})
    with MjpegServer(scene, fps=5) as stream:
        await register_camera(
            pool, enterprise_id=ent, site_id=site, camera_id=camera, source=stream.url, sample_fps=4
        )
        detector = VisionDetector(fast)
        detector.group_id = f"test-vision-{uid}"
        async with AlertService(fast), detector, CameraIngest(fast, serve_http=False) as ingest:

            async def alert():
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT alert_id, evidence FROM alerts"
                        " WHERE source_id = %s AND code = 'KITCHEN_NO_MASK'",
                        (camera,),
                    )
                    return await cur.fetchone()

            alert_id, evidence = await wait_until(alert, 90, "a KITCHEN_NO_MASK alert")
            counters = ingest.stats()[camera]["frames"]
    assert counters["sent"] >= 1 and counters["analysed"] >= counters["sent"]

    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as http,
    ):
        headers = {"Authorization": f"Bearer {settings.require_secret('api_token')}"}
        url = f"/api/v1/alerts/{alert_id}/evidence/{evidence['snapshot_sha256']}"
        got = await http.get(url, headers=headers)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert hashlib.sha256(got.content).hexdigest() == evidence["snapshot_sha256"]
        image = cv2.imdecode(np.frombuffer(got.content, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (480, 640, 3)
        # A hash the alert does not reference is not served, even if the file exists.
        other = f"/api/v1/alerts/{alert_id}/evidence/{'0' * 64}"
        assert (await http.get(other, headers=headers)).status_code == 404
        assert (await http.get(url)).status_code == 401


async def test_covered_lens_raises_and_clears_camera_tampered(settings, pool, uid):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"cam-{uid}"
    scene = KitchenScene(Script.parse([{"kind": "lens_covered", "start_s": 4, "end_s": 9}]))
    quick = settings.model_copy(update={"camera_tamper_hold_s": 1.0})
    with MjpegServer(scene, fps=5) as stream:
        await register_camera(
            pool, enterprise_id=ent, site_id=site, camera_id=camera, source=stream.url, sample_fps=4
        )
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            CameraIngest(quick, serve_http=False),
        ):
            raised, cleared = await violations.wait_for(
                lambda r: r["source_id"] == camera, count=2, timeout=40
            )
    assert raised["code"] == cleared["code"] == "CAMERA_TAMPERED"
    assert raised["state"] == "active" and cleared["state"] == "cleared"
    assert raised["violation_id"] == cleared["violation_id"]
    # A hand over the lens is nearly black: either reading of it is right.
    assert raised["evidence"]["kind"] in ("covered", "blackout")
    assert raised["evidence"].get("snapshot_sha256")


async def test_unreachable_camera_goes_offline_and_comes_back(settings, pool, uid):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"cam-{uid}"
    quick = settings.model_copy(update={"camera_offline_after_s": 2.0})
    with MjpegServer(KitchenScene(), fps=5) as stream:
        await register_camera(
            pool, enterprise_id=ent, site_id=site, camera_id=camera, source=stream.url, sample_fps=4
        )
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            CameraIngest(quick, serve_http=False) as ingest,
        ):
            await wait_until(
                lambda: _async(ingest.stats()[camera]["frames"]["analysed"] > 0), 20, "first frames"
            )
            stream.set_available(False)
            [offline] = await violations.wait_for(lambda r: r["source_id"] == camera, timeout=30)
            stream.set_available(True)
            await violations.wait_for(lambda r: r["source_id"] == camera, count=2, timeout=40)
            reconnects = ingest.stats()[camera]["reconnects"]
    back = [r for r in violations.records if r["source_id"] == camera][1]
    assert offline["code"] == "CAMERA_OFFLINE" and offline["state"] == "active"
    assert back["state"] == "cleared" and back["violation_id"] == offline["violation_id"]
    assert reconnects >= 1


async def _async(value):
    return value


async def test_a_looped_video_file_is_a_camera(settings, pool, uid, tmp_path):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"file-{uid}"
    video = tmp_path / "kitchen.avi"
    # Two seconds of video looped: the camera keeps delivering after the file ends.
    await asyncio.to_thread(write_video, KitchenScene(), video, 2.0, 10)
    quick = settings.model_copy(update={"camera_keyframe_interval_s": 0.5})
    await register_camera(
        pool, enterprise_id=ent, site_id=site, camera_id=camera, source=str(video), sample_fps=4
    )
    async with (
        KafkaTail(settings.kafka_bootstrap, FRAMES, decode=frame_record) as frames,
        CameraIngest(quick, serve_http=False) as ingest,
    ):
        # 4 fps for more than the file's 2 s: only a looping reader gets this far.
        await wait_until(lambda: _async(ingest.stats()[camera]["frames"]["analysed"] >= 12), 30, "a loop")
        got = await frames.wait_for(lambda r: r["key"] == camera, count=4, timeout=30)
    assert [int(r["headers"]["seq"]) for r in got] == sorted(int(r["headers"]["seq"]) for r in got)
    first = got[0]["headers"]
    assert (
        first["enterprise_id"] == ent and first["site_id"] == site and first["content-type"] == "image/jpeg"
    )
    assert first["reason"] == "first"


async def test_push_endpoint_accepts_jpegs_and_refuses_everything_else(settings, pool, uid):
    ent, site, camera, pulled = f"ent-{uid}", f"site-{uid}", f"edge-{uid}", f"pulled-{uid}"
    await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push")
    await register_camera(
        pool, enterprise_id=ent, site_id=site, camera_id=pulled, source="rtsp://10.255.255.1/x"
    )
    s = settings.model_copy(update={"ingest_http_port": 0, "frame_max_bytes": 64 * 1024})
    _, buf = cv2.imencode(".jpg", KitchenScene().render(1.0), [cv2.IMWRITE_JPEG_QUALITY, 80])
    frame = buf.tobytes()
    async with (
        KafkaTail(settings.kafka_bootstrap, FRAMES, decode=frame_record) as frames,
        KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead,
        CameraIngest(s) as ingest,
        httpx.AsyncClient(base_url=ingest.http_url) as http,
    ):
        token = {"Authorization": f"Bearer {s.require_secret('camera_push_token')}"}
        jpeg = {**token, "Content-Type": "image/jpeg"}
        url = f"/v1/cameras/{camera}/frames"
        first = await http.post(url, content=frame, headers=jpeg)
        assert first.status_code == 202 and first.json()["sent"] is True
        again = await http.post(url, content=frame, headers=jpeg)
        assert again.status_code == 202 and again.json() == {
            "camera_id": camera,
            "sent": False,
            "reason": "static",
        }
        [sent] = await frames.wait_for(lambda r: r["key"] == camera)
        assert sent["headers"]["reason"] == "push" and sent["size"] == len(frame)

        soi = b"\xff\xd8\xff"  # a JPEG's first bytes, so only the later checks can catch these
        cases = [
            ("no token", url, frame, {"Content-Type": "image/jpeg"}, 401, None),
            ("png", url, b"\x89PNG....", {**token, "Content-Type": "image/png"}, 415, "bad_content_type"),
            ("big", url, soi + b"0" * 70_000, jpeg, 413, "frame_too_large"),
            ("corrupt", url, soi + b"0" * 100, jpeg, 422, "corrupt_jpeg"),
            ("not jpeg", url, b"hello", jpeg, 422, "not_jpeg"),
            ("future", url, frame, {**jpeg, "X-Vigil-Timestamp": str(2**42)}, 422, "bad_timestamp"),
            ("unknown", f"/v1/cameras/nope-{uid}/frames", frame, jpeg, 404, "unknown_camera"),
            ("pulled", f"/v1/cameras/{pulled}/frames", frame, jpeg, 409, "not_a_push_camera"),
        ]
        for what, path, body, headers, status, _reason in cases:
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == status, (what, response.text)
        reasons = {case[-1] for case in cases if case[-1]}
        letters = await dead.wait_for(
            lambda r: r["service"] == "camera-ingest" and uid in r["source"], count=len(reasons)
        )
        assert {r["reason"] for r in letters} == reasons
        metrics = (await http.get("/metrics")).text
        assert f'vigil_camera_frames_total{{camera="{camera}",outcome="sent"}} 1' in metrics
        assert f'vigil_camera_frames_total{{camera="{camera}",outcome="gated"}} 1' in metrics


@pytest.mark.parametrize("source", ["ftp://x/y", "relative.avi"])
async def test_bad_sources_are_refused_at_registration(pool, uid, source):
    from vigil.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        await register_camera(
            pool, enterprise_id=f"e-{uid}", site_id=f"s-{uid}", camera_id=f"c-{uid}", source=source
        )
