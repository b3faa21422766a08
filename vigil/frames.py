"""The `vigil.frames.v1` contract: the value is the JPEG itself, the metadata travels in headers,
the key is the camera id (so one camera's frames stay in order on one partition).

Headers are ASCII: `camera_id`, `enterprise_id`, `site_id`, `ts` (epoch ms of capture), `seq` (per
camera, from 0 at ingest start), `reason` (why the gate sent it: first, motion, keyframe, push)
and `content-type` (always image/jpeg). The detector checks all of them: a topic is a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from vigil.errors import InvalidMessage
from vigil.events import ID_PATTERN, MAX_FUTURE_MS, MIN_TS_MS

SendReason = Literal["first", "motion", "keyframe", "push"]
SEND_REASONS: tuple[str, ...] = get_args(SendReason)
JPEG_MAGIC = b"\xff\xd8\xff"
CONTENT_TYPE = "image/jpeg"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class FrameMeta:
    camera_id: str
    enterprise_id: str
    site_id: str
    ts: int
    seq: int
    reason: SendReason

    def headers(self) -> Headers:
        return [
            ("camera_id", self.camera_id.encode()),
            ("enterprise_id", self.enterprise_id.encode()),
            ("site_id", self.site_id.encode()),
            ("ts", str(self.ts).encode()),
            ("seq", str(self.seq).encode()),
            ("reason", self.reason.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]


def decode_frame_meta(headers: Sequence[tuple[str, bytes]], value: bytes | None, *, now_ms: int) -> FrameMeta:
    """Check a frame record's headers and value; raise InvalidMessage with a reason otherwise."""
    found: dict[str, str] = {}
    for name, raw in headers:
        try:
            found[name] = raw.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidMessage("bad_header", f"header {name!r} is not ASCII") from None
    for key in ("camera_id", "enterprise_id", "site_id"):
        if not ID_PATTERN.fullmatch(found.get(key, "")):
            raise InvalidMessage("bad_header", f"header {key!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    try:
        ts, seq = int(found.get("ts", "")), int(found.get("seq", "0"))
    except ValueError:
        raise InvalidMessage("bad_header", "headers 'ts' and 'seq' must be integers") from None
    if not MIN_TS_MS <= ts <= now_ms + MAX_FUTURE_MS:
        raise InvalidMessage(
            "bad_timestamp", "header 'ts' must be epoch milliseconds between 2000 and tomorrow"
        )
    reason = found.get("reason", "")
    if reason not in SEND_REASONS:
        raise InvalidMessage("bad_header", f"header 'reason' must be one of {', '.join(SEND_REASONS)}")
    if found.get("content-type", CONTENT_TYPE) != CONTENT_TYPE:
        raise InvalidMessage("bad_content_type", f"frames must be {CONTENT_TYPE}")
    if not value or not value.startswith(JPEG_MAGIC):
        raise InvalidMessage("not_jpeg", "the record value is not a JPEG image")
    return FrameMeta(found["camera_id"], found["enterprise_id"], found["site_id"], ts, seq, reason)  # type: ignore[arg-type]
