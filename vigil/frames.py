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
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# The largest frame a camera may push: 8K UHD (7680x4320) or its portrait, and no side over 8192.
# Decoding it takes about 100 MB; anything larger is not a camera frame.
MAX_FRAME_PIXELS = 7680 * 4320
MAX_FRAME_SIDE = 8192

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


def image_size(data: bytes, media_type: str = CONTENT_TYPE) -> tuple[int, int] | None:
    """(width, height) from a JPEG's or PNG's header, or None when the header cannot be read.

    Read before decoding, because a decoder allocates the declared size up front: a 600-byte JPEG
    that claims 20000x20000 pixels costs OpenCV 1.2 GB and seconds of CPU (no decompression bombs).
    """
    if media_type == "image/png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    i, n = 2, len(data)  # JPEG: walk the marker segments to the start of frame
    while i < n:
        if data[i] != 0xFF:
            return None
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image, or a scan, before any frame header
            return None
        if i + 2 > n:
            return None
        length = int.from_bytes(data[i : i + 2], "big")
        if marker in _JPEG_SOF:
            if i + 7 > n:
                return None
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 3 : i + 5], "big")
        if length < 2:
            return None
        i += length
    return None
