"""The shipped kitchen model on real photos it never trained on (the demo's six held-out photos,
chosen by their labels before training), through the service's own backend and then through the
vision detector on the real Kafka and database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.manifest import ModelManifest, find_manifest, load_manifest
from detectors.vision.service import VisionDetector
from models.kitchen.data import SOURCES, read_labels
from simulators.photo_scene import bundled_photos
from tests.helpers import KafkaTail
from vigil.cameras import register_camera
from vigil.frames import FrameMeta
from vigil.kafka import now_ms
from vigil.topics import FRAMES, VIOLATIONS

LABELS = Path(__file__).resolve().parents[2] / "data" / "kitchen-smoke"


@pytest.fixture(scope="module")
def kitchen() -> ModelManifest:
    return load_manifest(find_manifest("kitchen"))


def labelled(photo: Path, image: np.ndarray) -> np.ndarray:
    """The photo's labelled boxes, x1 y1 x2 y2 in its pixels (read as training reads them)."""
    source = SOURCES[1] if photo.stem.startswith("cigarette") else SOURCES[0]
    boxes = read_labels(LABELS / source.name / "labels" / f"{photo.stem}.txt", source)[:, 1:]
    h, w = image.shape[:2]
    return boxes * np.array([w, h, w, h], dtype=np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    return inter / (float(np.prod(a[2:] - a[:2])) + float(np.prod(b[2:] - b[:2])) - inter)


def test_the_kitchen_model_is_the_default_and_names_its_codes(kitchen: ModelManifest) -> None:
    from vigil.settings import Settings

    assert Settings().vision_model == "kitchen"
    assert kitchen.violations["without_mask"].code == "KITCHEN_NO_MASK"
    assert kitchen.violations["cigarette"].code == "KITCHEN_SMOKING"
    assert "with_mask" not in kitchen.violations  # a worn mask raises nothing


def test_held_out_photos_violations_found_masked_faces_left_alone(kitchen: ModelManifest) -> None:
    """Per photo, at the manifest's operating scores. Measured with the shipped model: both bare
    faces and cigarette-431 are found over their labels; cigarette-408's cigarette scores 0.15,
    under its 0.20 operating score (a miss); no-mask-379 also shows a 0.24 "cigarette" (a false
    alarm the card lists). The test holds the model to that: masked faces raise nothing, every
    bare face is found, and at least one of the two cigarettes."""
    backend = YoloOnnxBackend(kitchen, max_batch=1)
    found_by_photo: dict[str, bool] = {}
    try:
        for photo in bundled_photos():
            image = cv2.imread(str(photo))
            prepared = backend.prepare([image])
            found = backend.decode(backend.infer(prepared), prepared)[0]
            names = [kitchen.classes[c] for c in found.class_id]
            raised = [
                (name, box)
                for name, box, score in zip(names, found.xyxy, found.confidence, strict=True)
                if name in kitchen.violations and score >= kitchen.violations[name].min_score
            ]
            if photo.stem.startswith("mask-"):
                assert not [n for n, _ in raised if n != "cigarette"], (
                    f"{photo.name}: a masked face raised {raised}"
                )
                continue
            wanted = "cigarette" if photo.stem.startswith("cigarette") else "without_mask"
            truth = labelled(photo, image)
            hits = [box for name, box in raised if name == wanted and max(iou(box, t) for t in truth) >= 0.5]
            found_by_photo[photo.stem] = bool(hits)
    finally:
        backend.close()
    assert found_by_photo["no-mask-379"] and found_by_photo["no-mask-540"], found_by_photo
    assert found_by_photo["cigarette-408"] or found_by_photo["cigarette-431"], found_by_photo


async def test_the_vision_detector_raises_no_mask_and_smoking_on_real_photos(settings, pool, uid) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    photos = {p.stem: p.read_bytes() for p in bundled_photos()}
    # The photos the model gets right (the per-photo test above measures all six, misses included):
    # this test is about the pipeline around the real model, not its accuracy.
    cameras = {"no-mask-540": f"face-{uid}", "cigarette-431": f"smoke-{uid}", "mask-180": f"masked-{uid}"}
    for camera in cameras.values():
        await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push")
    detector = VisionDetector(
        settings.model_copy(update={"vision_model": "kitchen", "vision_max_lag_s": 120.0})
    )
    detector.group_id = f"test-kitchen-{uid}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations, detector:
            now = now_ms()
            for seq in range(3):  # three frames each: the confirmation needs 2 of the last 3
                for stem, camera in cameras.items():
                    meta = FrameMeta(camera, ent, site, now + seq, seq, "motion")
                    await producer.send_and_wait(
                        FRAMES, photos[stem], key=camera.encode(), headers=meta.headers()
                    )
            mine = set(cameras.values())
            await violations.wait_for(lambda r: r["source_id"] in mine, count=2, timeout=60)
            # Every frame analysed before the masked camera's silence is judged.
            deadline = time.monotonic() + 30
            while detector.stats.analysed < 9 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            found = {(r["source_id"], r["code"]) for r in violations.records if r["source_id"] in mine}
    finally:
        await producer.stop()
    assert found == {
        (cameras["no-mask-540"], "KITCHEN_NO_MASK"),
        (cameras["cigarette-431"], "KITCHEN_SMOKING"),
    }
