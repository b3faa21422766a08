"""The demo's photo cameras show the shipped kitchen model what it finds in the photos themselves
(issue 16.8: a layout that shrank the photos to keep the tamper check quiet lost the cigarettes).

Each demo camera is run as camera ingest runs it: its frames, JPEG-encoded as its MJPEG server
serves them and decoded, go through the camera's channel (motion gate and tamper check); the frames
the gate sends are encoded and decoded again as ingest sends them and given to the real model
through the vision detector's own backend (letterbox, onnxruntime, decoder), and their hits are
confirmed k-of-n as the vision detector confirms them. Scene time runs faster than real time.

Which photo shows what comes from its file name (its label, see ATTRIBUTION.md), not from the
model's scores: masked faces must raise nothing, bare faces KITCHEN_NO_MASK, and the demo must
raise KITCHEN_SMOKING. Beyond that, every camera must give the same verdict per class as the
model gives on the photo file itself, so the camera's framing neither hides a finding nor invents
one (cigarette-408 is a miss of the model at any framing that keeps its size: 0.14-0.15 against
the 0.20 operating score; a better model would have to find it in the demo too; and no-mask-379
shows a 0.28-0.35 "cigarette", a false alarm of the model that its card lists, on the file too).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.confirm import CameraConfirmer, Hit
from detectors.vision.detections import Detections
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest
from ingest.camera.channel import CameraChannel
from simulators.kitchen_cameras import SAMPLE_FPS, demo_cameras, demo_scene
from simulators.photo_scene import PhotoScene, bundled_photos
from vigil.cameras import Camera
from vigil.settings import Settings

DURATION_S = 40  # the first frame and three keyframes: enough for a 2-of-3 confirmation
CAMERA_JPEG_QUALITY = 80  # the demo's MjpegServer default


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(np.frombuffer(buf.tobytes(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def raised_classes(found: Detections, manifest: ModelManifest) -> dict[str, float]:
    """The violation classes found at or over their operating score, with their best score."""
    best: dict[str, float] = {}
    for class_id, score in zip(found.class_id, found.confidence, strict=True):
        name = manifest.classes[int(class_id)]
        rule = manifest.violations.get(name)
        if rule is not None and score >= rule.min_score:
            best[name] = max(best.get(name, 0.0), float(score))
    return best


@pytest.fixture(scope="module")
def kitchen() -> ModelManifest:
    return load_manifest(find_manifest(Settings().vision_model))


@pytest.fixture(scope="module")
def backend(kitchen: ModelManifest) -> Iterator[YoloOnnxBackend]:
    backend = YoloOnnxBackend(kitchen, max_batch=1)
    yield backend
    backend.close()


def run_camera(
    camera: int, kitchen: ModelManifest, backend: YoloOnnxBackend
) -> tuple[list[dict[str, float]], set[str]]:
    """Per sent frame, the violation classes the model raised; and the codes confirmed."""
    settings = Settings()
    scene = demo_scene(camera, photos=True)
    channel = CameraChannel(
        Camera(f"demo-kitchen-cam-{camera + 1}", "ent", "site", "http://127.0.0.1/", SAMPLE_FPS, ()),
        keyframe_interval_s=settings.camera_keyframe_interval_s,
        tamper_hold_s=settings.camera_tamper_hold_s,
    )
    confirmer = CameraConfirmer(
        k=settings.vision_confirm_k,
        n=settings.vision_confirm_n,
        cooldown_ms=int(settings.vision_cooldown_s * 1000),
    )
    codes = tuple(sorted({rule.code for rule in kitchen.violations.values()}))
    t0 = 1_763_000_000_000
    per_frame: list[dict[str, float]] = []
    confirmed: set[str] = set()
    for k in range(int(DURATION_S * SAMPLE_FPS)):
        t = k / SAMPLE_FPS
        ts = t0 + round(t * 1000)
        frame = jpeg_round_trip(scene.render(t), CAMERA_JPEG_QUALITY)
        decision, state, _ = channel.analyse(frame, ts)
        assert not state.tampered, state
        if not decision.send:
            continue
        sent = jpeg_round_trip(frame, settings.camera_jpeg_quality)  # as ingest sends it
        raised = raised_classes(backend.detect([sent])[0], kitchen)
        per_frame.append(raised)
        hits = {}
        for name, score in raised.items():
            code = kitchen.violations[name].code
            if code not in hits or hits[code].score < score:
                hits[code] = Hit(ts, score, Detections.empty(), None)
        confirmed |= {c.code for c in confirmer.observe(ts, codes, hits)}
    return per_frame, confirmed


def test_the_demo_cameras_show_the_model_what_it_finds_in_the_photos(
    kitchen: ModelManifest, backend: YoloOnnxBackend
) -> None:
    photos = bundled_photos()
    assert demo_cameras(photos=True) == len(photos)  # every photo is shown, none picked by score
    codes_by_photo: dict[str, set[str]] = {}
    for camera, photo in enumerate(photos):
        scene = demo_scene(camera, photos=True)
        assert isinstance(scene, PhotoScene) and scene.photo == photo
        image = cv2.imread(str(photo))
        on_file = set(raised_classes(backend.detect([image])[0], kitchen))
        per_frame, confirmed = run_camera(camera, kitchen, backend)
        assert len(per_frame) >= 3, f"{photo.name}: only {len(per_frame)} frames sent"
        for raised in per_frame:
            assert set(raised) == on_file, f"{photo.name}: a demo frame raised {raised}, the file {on_file}"
        codes_by_photo[photo.stem] = confirmed

    for stem, confirmed in codes_by_photo.items():
        if stem.startswith("mask-"):
            assert confirmed == set(), f"{stem}: a masked face raised {confirmed}"
        elif stem.startswith("no-mask-"):
            assert "KITCHEN_NO_MASK" in confirmed, f"{stem}: {confirmed}"
    smoking = [stem for stem, confirmed in codes_by_photo.items() if "KITCHEN_SMOKING" in confirmed]
    assert any(stem.startswith("cigarette-") for stem in smoking), codes_by_photo
