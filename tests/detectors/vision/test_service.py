"""The vision detector as a consumer-group member on the real Kafka and database: frames of the
simulated kitchen in, violations with evidence out; confirmation, zones, cooldown and staleness."""

from __future__ import annotations

import asyncio
import hashlib
import time

import cv2
from aiokafka import AIOKafkaProducer

from detectors.vision.service import VisionDetector
from simulators.camera import KitchenScene, Script
from tests.helpers import KafkaTail
from vigil.cameras import register_camera
from vigil.evidence import EvidenceStore
from vigil.frames import FrameMeta
from vigil.kafka import now_ms
from vigil.topics import DEADLETTER, FRAMES, VIOLATIONS

NO_MASK = Script.parse([{"kind": "no_mask", "start_s": 0, "end_s": 1000, "worker": 1}])
RAT = Script.parse([{"kind": "rat", "start_s": 0, "end_s": 1000, "position": 0.5}])
QUIET = Script.parse([])


def jpeg(scene: KitchenScene, t: float) -> bytes:
    ok, buf = cv2.imencode(".jpg", scene.render(t), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


async def test_confirmed_violations_with_evidence_zones_cooldown_and_staleness(settings, pool, uid):
    ent, site = f"ent-{uid}", f"site-{uid}"
    cams = {name: f"{name}-{uid}" for name in ("steady", "blip", "zoned", "cooldown", "stale")}
    # The zoned camera counts bare faces only in the top-left corner, where no worker ever stands;
    # a rat, which no zone names, counts anywhere.
    corner = {"name": "corner", "points": [[0, 0], [0.1, 0], [0.1, 0.1]], "codes": ["KITCHEN_NO_MASK"]}
    for name, camera in cams.items():
        zones = [corner] if name == "zoned" else []
        await register_camera(
            pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push", zones=zones
        )
    no_mask, quiet, rat = KitchenScene(NO_MASK), KitchenScene(QUIET), KitchenScene(RAT)
    now = now_ms()
    plan: list[tuple[str, bytes, int]] = []
    plan += [("steady", jpeg(no_mask, t), now + i) for i, t in enumerate((1, 1.5, 2))]
    plan += [
        ("blip", jpeg(no_mask, 1), now),
        ("blip", jpeg(quiet, 1.5), now + 1),
        ("blip", jpeg(quiet, 2), now + 2),
    ]
    plan += [("zoned", jpeg(no_mask, t), now + i) for i, t in enumerate((1, 1.5, 2))]
    plan += [("zoned", jpeg(rat, t), now + 3 + i) for i, t in enumerate((3, 3.5, 4))]
    plan += [("cooldown", jpeg(no_mask, 1 + i / 2), now + i) for i in range(8)]
    plan += [("stale", jpeg(no_mask, t), now - 600_000 + i) for i, t in enumerate((1, 1.5, 2))]

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    # Generous lag: the group join alone takes seconds here; the stale frames are 10 minutes old.
    detector = VisionDetector(settings.model_copy(update={"vision_max_lag_s": 120.0}))
    detector.group_id = f"test-vision-{uid}"  # a group of its own: no waiting on other tests' members
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead,
            detector,
        ):
            for seq, (name, frame, ts) in enumerate(plan):
                meta = FrameMeta(cams[name], ent, site, ts, seq, "motion")
                await producer.send_and_wait(FRAMES, frame, key=cams[name].encode(), headers=meta.headers())
            forged = FrameMeta(cams["steady"], "someone-else", site, now, 99, "motion")
            await producer.send_and_wait(FRAMES, b"GIF89a", key=b"x", headers=forged.headers())
            await producer.send_and_wait(FRAMES, jpeg(quiet, 1), key=b"x", headers=forged.headers())

            mine = set(cams.values())
            found = await violations.wait_for(lambda r: r["source_id"] in mine, count=3, timeout=60)
            letters = await dead.wait_for(
                # This test's two forged frames only: other tests' detectors dead-letter on the same
                # topic for the same reasons.
                lambda r: (
                    r["service"] == "detector-vision"
                    and r["reason"] in ("not_jpeg", "enterprise_mismatch")
                    and (r["payload"].startswith("GIF89a") or repr(cams["steady"]) in r["detail"])
                ),
                count=2,
            )
            # Everything analysed (or dropped as stale) before the absence of findings is judged.
            deadline = time.monotonic() + 30
            expected = len(plan) - 3
            while detector.stats.analysed < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            found = [r for r in violations.records if r["source_id"] in mine]
    finally:
        await producer.stop()

    by_camera = {(r["source_id"], r["code"]) for r in found}
    assert by_camera == {
        (cams["steady"], "KITCHEN_NO_MASK"),
        (cams["zoned"], "KITCHEN_RODENT"),
        (cams["cooldown"], "KITCHEN_NO_MASK"),
    }, "one noisy frame, a face outside its zone and stale frames must raise nothing"
    assert len(found) == 3, "the cooldown keeps a camera's repeated finding to one"
    assert detector.stats.dropped_stale >= 3
    assert {r["reason"] for r in letters} >= {"not_jpeg", "enterprise_mismatch"}

    steady = next(r for r in found if r["source_id"] == cams["steady"])
    assert steady["state"] == "active" and steady["source_kind"] == "camera"
    assert steady["window_start"] == now  # the first of the confirming frames
    evidence = steady["evidence"]
    store = EvidenceStore(settings.evidence_dir)
    snapshot, frame = store.get(evidence["snapshot_sha256"]), store.get(evidence["frame_sha256"])
    assert snapshot and frame
    assert hashlib.sha256(snapshot).hexdigest() == evidence["snapshot_sha256"]
    assert frame == plan[0][1] or frame in {f for _, f, _ in plan[:3]}
    assert evidence["boxes"] and evidence["boxes"][0]["class"] == "without_mask"
