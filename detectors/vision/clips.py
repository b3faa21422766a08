"""The clip request the vision detector publishes with each camera finding: camera ingest, which
holds the camera's recent frames, makes the clip (ingest/camera/clips.py)."""

from __future__ import annotations

from vigil.events import ClipRequest, Violation
from vigil.kafka import now_ms
from vigil.settings import Settings


def clip_request(violation: Violation, settings: Settings) -> ClipRequest | None:
    """The request for an active camera finding with a frame (None for anything else)."""
    evidence = violation.evidence
    frame_ts = evidence.get("frame_ts")
    if violation.source_kind != "camera" or violation.state != "active" or not isinstance(frame_ts, int):
        return None
    boxes = evidence.get("boxes")
    return ClipRequest(
        violation_id=violation.violation_id,
        enterprise_id=violation.enterprise_id,
        site_id=violation.site_id,
        camera_id=violation.source_id,
        # The first confirming frame: the clip shows how the behaviour began and that it went on.
        ts=violation.window_start,
        before_ms=int(settings.clip_before_s * 1000),
        after_ms=int(settings.clip_after_s * 1000),
        box_ts=frame_ts,
        boxes=boxes if isinstance(boxes, list) else [],
        requested_at=now_ms(),
    )
