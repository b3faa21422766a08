"""Real footage through the real pipeline (issue 23.5/23.6/23.3): OpenCV's vtest.avi (people
walking) registered as a looped file camera, camera ingest -> Kafka -> the vision detector running
the shipped YOLOX-Nano COCO model, on the real brokers and database.

Two cameras watch the same clip, one on a site that is closed now and one on a site that is open:
the person detections of every analysed frame are counted for both, and the after-hours finding is
raised for the closed site only.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from detectors.vision.detections import Detections
from detectors.vision.manifest import find_manifest, load_manifest
from detectors.vision.service import VisionDetector
from ingest.camera.service import CameraIngest
from tests.helpers import KafkaTail
from vigil.cameras import register_camera
from vigil.registry import set_site_hours
from vigil.topics import VIOLATIONS

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "video" / "vtest.avi"
CODE = "KITCHEN_AFTER_HOURS_PRESENCE"

pytestmark = pytest.mark.skipif(not VIDEO.is_file(), reason=f"the shared clip {VIDEO} is absent")


class CountingDetector(VisionDetector):
    """The real detector, also counting each analysed frame's confident person boxes per camera."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.people: dict[str, list[int]] = defaultdict(list)
        self._person = self.manifest.classes.index("person")
        self._min_score = self.manifest.violations["person"].min_score

    def _confirm(self, frame, detections: Detections, size):  # type: ignore[no-untyped-def]
        mask = (detections.class_id == self._person) & (detections.confidence >= self._min_score)
        self.people[frame.camera.camera_id].append(int(np.count_nonzero(mask)))
        return super()._confirm(frame, detections, size)


def hours_around(now: datetime, start_h: float, end_h: float) -> tuple[str, str]:
    """HH:MM from now + start_h to now + end_h (wrapping over midnight is the code's business)."""
    return (
        (now + timedelta(hours=start_h)).strftime("%H:%M"),
        (now + timedelta(hours=end_h)).strftime("%H:%M"),
    )


async def test_people_in_real_footage_and_the_after_hours_finding(settings, pool, uid):
    ent = f"ent-{uid}"
    closed_site, open_site = f"closed-{uid}", f"open-{uid}"
    closed_cam, open_cam = f"vtest-closed-{uid}", f"vtest-open-{uid}"
    for site, camera in ((closed_site, closed_cam), (open_site, open_cam)):
        await register_camera(
            pool, enterprise_id=ent, site_id=site, camera_id=camera, source=str(VIDEO), sample_fps=4
        )
    now = datetime.now(UTC).astimezone(ZoneInfo(settings.timezone))
    async with pool.connection() as conn:
        await set_site_hours(conn, closed_site, *hours_around(now, 2, 3))  # opens in two hours
        await set_site_hours(conn, open_site, *hours_around(now, -1, 1))  # open until in an hour

    fast = settings.model_copy(update={"camera_keyframe_interval_s": 1.0})
    detector = CountingDetector(fast, manifest=load_manifest(find_manifest("coco-person-phone")))
    detector.group_id = f"test-vision-{uid}"
    started = time.monotonic()
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            detector,
            CameraIngest(fast, serve_http=False),
        ):
            [found] = await violations.wait_for(
                lambda r: r["source_id"] == closed_cam and r["code"] == CODE, timeout=45
            )
            # The open site's camera has seen as many frames by now, with people in them.
            deadline = time.monotonic() + 20
            while len(detector.people[open_cam]) < 12 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
    finally:
        async with pool.connection() as conn:
            await conn.execute("UPDATE cameras SET enabled = false WHERE camera_id LIKE %s", (f"%{uid}",))

    for camera in (closed_cam, open_cam):
        counts = detector.people[camera]
        assert len(counts) >= 3, (camera, counts)
        # People walk through the whole clip: most analysed frames show at least one.
        assert sum(c > 0 for c in counts) >= 0.8 * len(counts), (camera, counts)
    assert len(detector.people[open_cam]) >= 12, detector.people[open_cam]
    assert found["site_id"] == closed_site and found["state"] == "active"
    params = found["evidence"]["params"]
    assert params["hits"] >= fast.vision_confirm_k
    assert (params["opens"], params["closes"]) == hours_around(now, 2, 3)
    assert any(b["class"] == "person" for b in found["evidence"]["boxes"])
    assert not [r for r in violations.records if r["source_id"] == open_cam], "raised while open"
    assert time.monotonic() - started < 60
