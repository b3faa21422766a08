"""Event types that travel on Kafka, as frozen, slotted dataclasses.

Every value on a Vigil topic is a JSON object with `"v": 1` (the schema version) and `"type"`.
Encoding uses orjson, which serialises dataclasses natively; decoding validates every field, since
a Kafka topic is a boundary too (another version, another writer, a hand-made message).
Times are integer milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import orjson

from vigil.catalogue import SEVERITIES, Severity, catalogue
from vigil.errors import InvalidMessage, show

SCHEMA_VERSION = 1

# Ids name MQTT topic levels, Kafka keys and database keys: no wildcards, no separators, bounded
# length. The one definition: ingest, the API and the registry's CHECK constraints follow it.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Plausible event times: nothing before 2000, nothing more than a day ahead of this machine's
# clock (ingest refuses skew far smaller; this guards the topics against other writers).
# Earlier stamps are a device with no clock set, or one sending seconds instead of milliseconds.
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 86_400_000

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Numeric readings from one device at one time."""

    enterprise_id: str
    device_id: str
    site_id: str
    profile: str
    ts: int
    metrics: dict[str, float]
    received_at: int
    type: Literal["telemetry"] = "telemetry"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A discrete event from a device: an elevator fault code, a door event, a safety valve lifting."""

    enterprise_id: str
    device_id: str
    site_id: str
    profile: str
    ts: int
    event: str
    data: Json
    received_at: int
    type: Literal["event"] = "event"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """Online/offline, from the device itself or from its MQTT last will."""

    enterprise_id: str
    device_id: str
    site_id: str
    profile: str
    ts: int
    online: bool
    received_at: int
    type: Literal["status"] = "status"
    v: int = SCHEMA_VERSION


DeviceMessage = Telemetry | DeviceEvent | DeviceStatus

ViolationState = Literal["active", "cleared"]


@dataclass(frozen=True, slots=True)
class Violation:
    """A detector's finding. `violation_id` is deterministic (source, code, window start), so a
    replayed or re-emitted finding upserts the same alert instead of creating another."""

    violation_id: str
    code: str
    state: ViolationState
    enterprise_id: str
    site_id: str
    source_kind: Literal["device", "camera"]
    source_id: str
    window_start: int
    detected_at: int
    severity: Severity
    detector: str
    summary: str
    evidence: Json = field(default_factory=dict)
    type: Literal["violation"] = "violation"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A state change of an alert, published on `vigil.alerts.v1` for live views."""

    alert_id: str
    enterprise_id: str
    site_id: str
    code: str
    status: str
    change: str
    severity: str
    tier: int
    at: int
    summary: str
    type: Literal["alert_change"] = "alert_change"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something a service refused, with the reason, so nothing bad is silently dropped."""

    service: str
    source: str
    reason: str
    detail: str
    payload: str
    received_at: int
    type: Literal["deadletter"] = "deadletter"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class ClipRequest:
    """The vision detector asks for an event clip of a camera finding: frames from `ts - before_ms`
    to `ts + after_ms` (`ts`: the first confirming frame), with `boxes` (the finding's evidence
    boxes: class, score, xyxy in the frame's pixels) drawn on the frames around `box_ts`."""

    violation_id: str
    enterprise_id: str
    site_id: str
    camera_id: str
    ts: int
    before_ms: int
    after_ms: int
    box_ts: int
    boxes: list[Json]
    requested_at: int
    type: Literal["clip_request"] = "clip_request"
    v: int = SCHEMA_VERSION


ClipStatus = Literal["ready", "failed"]


@dataclass(frozen=True, slots=True)
class ClipReady:
    """Camera ingest's answer to a ClipRequest: the clip's SHA-256 in the evidence store (status
    "ready"), or why there is none ("failed": `detail` says why; `sha256` is empty)."""

    violation_id: str
    enterprise_id: str
    camera_id: str
    status: ClipStatus
    sha256: str
    frames: int
    duration_ms: int
    truncated: bool
    detail: str
    at: int
    type: Literal["clip_ready"] = "clip_ready"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class LiveWatch:
    """Someone (`watcher`, random per viewer) watches `camera_id` live until `until` (epoch ms):
    the camera ingest pulling it publishes its frames on `vigil.live.v1` meanwhile. `until` = 0
    ends this watcher's lease at once (the viewer went away)."""

    camera_id: str
    enterprise_id: str
    watcher: str
    until: int
    at: int
    type: Literal["live_watch"] = "live_watch"
    v: int = SCHEMA_VERSION


def violation_id(source_kind: str, source_id: str, code: str, window_start: int) -> str:
    digest = hashlib.sha256(f"{source_kind}\x1f{source_id}\x1f{code}\x1f{window_start}".encode())
    return digest.hexdigest()[:32]


def encode(event: object) -> bytes:
    return orjson.dumps(event)


# --- decoding: every field checked, with a reason a person can act on ---------------------------


def _obj(raw: bytes | str) -> Json:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("bad_json", str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidMessage("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    if value.get("v") != SCHEMA_VERSION:
        raise InvalidMessage("bad_version", f"expected v={SCHEMA_VERSION}, got {show(value.get('v'))}")
    return value


def _str(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidMessage("bad_field", f"{key!r} must be a non-empty string")
    return value


def _int(obj: Json, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage("bad_field", f"{key!r} must be an integer")
    return value


def _id(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidMessage("bad_field", f"{key!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _ts(obj: Json, key: str) -> int:
    value = _int(obj, key)
    latest = time.time_ns() // 1_000_000 + MAX_FUTURE_MS
    if not MIN_TS_MS <= value <= latest:
        raise InvalidMessage("bad_timestamp", f"{key!r} must be epoch milliseconds between 2000 and tomorrow")
    return value


def _dict(obj: Json, key: str) -> Json:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise InvalidMessage("bad_field", f"{key!r} must be an object")
    return value


def _metrics(obj: Json) -> dict[str, float]:
    metrics = _dict(obj, "metrics")
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidMessage("bad_metric", f"metric {show(name)} must be a finite number")
    return metrics


def _no_wide_integers(metrics: Json, raw: bytes) -> None:
    """orjson reads a JSON integer beyond 64 bits as a rounded float. Where a metric is a float that
    large, the record is read again exactly (Python's json, rare and so cheap overall) and such an
    integer is refused rather than silently altered; a float literal that large is kept."""
    if not any(isinstance(v, float) and abs(v) >= 2.0**63 for v in metrics.values()):
        return
    exact = json.loads(raw).get("metrics", {})
    for name, value in exact.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidMessage("bad_metric", f"metric {show(name)} is an integer beyond 64 bits")


def _envelope(obj: Json) -> tuple[str, str, str, str, int, int]:
    return (
        _id(obj, "enterprise_id"),
        _id(obj, "device_id"),
        _id(obj, "site_id"),
        _str(obj, "profile"),
        _ts(obj, "ts"),
        _ts(obj, "received_at"),
    )


# The checks of `_envelope` and `_metrics` as schema constraints, run by the compiled decoder:
# ids as ID_PATTERN.fullmatch (\A…\Z, since msgspec searches), times no earlier than 2000, and
# integers within int64, where orjson too keeps a JSON integer an int (a larger one falls back to
# the checked path, which judges it), and floats below 2^63 in magnitude: a larger one may have been
# an integer beyond int64 that the float arm would round, so the checked path (which keeps it exact)
# judges it too. A JSON number is never NaN or infinite: msgspec refuses one out of range, as orjson
# does.
_WireId = Annotated[str, msgspec.Meta(pattern=r"\A[A-Za-z0-9_-]{1,64}\Z")]
_WireTs = Annotated[int, msgspec.Meta(ge=MIN_TS_MS)]
_WireInt = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_WireFloat = Annotated[float, msgspec.Meta(gt=-(2.0**63), lt=2.0**63)]


class _TelemetryWire(msgspec.Struct, forbid_unknown_fields=True):
    """`Telemetry` as ingest writes it, as a compiled schema for the detectors' hot path. Unknown
    keys are refused (not skipped), so nothing is accepted that the checked path would refuse."""

    v: int
    type: str
    enterprise_id: _WireId
    device_id: _WireId
    site_id: _WireId
    profile: Annotated[str, msgspec.Meta(min_length=1)]
    ts: _WireTs
    metrics: dict[str, _WireInt | _WireFloat]
    received_at: _WireTs


_TELEMETRY_WIRE = msgspec.json.Decoder(_TelemetryWire)


def _compiled_telemetry(raw: bytes) -> Telemetry | None:
    """A well-formed telemetry record decoded straight from bytes, or None for anything else (other
    types, or any doubt): `decode_device_message`'s checked path then judges it, reason and all."""
    try:
        w = _TELEMETRY_WIRE.decode(raw)
    except Exception:  # invalid UTF-8 is a UnicodeDecodeError; any doubt: the checked path
        return None
    latest = time.time_ns() // 1_000_000 + MAX_FUTURE_MS
    if w.v != SCHEMA_VERSION or w.type != "telemetry" or w.ts > latest or w.received_at > latest:
        return None
    return Telemetry(w.enterprise_id, w.device_id, w.site_id, w.profile, w.ts, w.metrics, w.received_at)


def decode_device_message(raw: bytes) -> DeviceMessage:
    fast = _compiled_telemetry(raw)
    if fast is not None:
        return fast
    obj = _obj(raw)
    kind = obj.get("type")
    ent, dev, site, profile, ts, received = _envelope(obj)
    if kind == "telemetry":
        values = _metrics(obj)
        _no_wide_integers(values, raw)
        return Telemetry(ent, dev, site, profile, ts, values, received)
    if kind == "event":
        return DeviceEvent(ent, dev, site, profile, ts, _str(obj, "event"), _dict(obj, "data"), received)
    if kind == "status":
        online = obj.get("online")
        if not isinstance(online, bool):
            raise InvalidMessage("bad_field", "'online' must be a boolean")
        return DeviceStatus(ent, dev, site, profile, ts, online, received)
    raise InvalidMessage("bad_type", f"unknown device message type {show(kind)}")


def decode_violation(raw: bytes) -> Violation:
    obj = _obj(raw)
    if obj.get("type") != "violation":
        raise InvalidMessage("bad_type", f"expected a violation, got {show(obj.get('type'))}")
    code = _str(obj, "code")
    if code not in catalogue():
        raise InvalidMessage("unknown_code", f"violation code {show(code)} is not in the catalogue")
    state = obj.get("state")
    if state not in ("active", "cleared"):
        raise InvalidMessage("bad_field", "'state' must be 'active' or 'cleared'")
    source_kind = obj.get("source_kind")
    if source_kind not in ("device", "camera"):
        raise InvalidMessage("bad_field", "'source_kind' must be 'device' or 'camera'")
    severity = obj.get("severity")
    if severity not in SEVERITIES:
        raise InvalidMessage("bad_field", f"'severity' must be one of {SEVERITIES}")
    return Violation(
        violation_id=_id(obj, "violation_id"),
        code=code,
        state=state,
        enterprise_id=_id(obj, "enterprise_id"),
        site_id=_id(obj, "site_id"),
        source_kind=source_kind,
        source_id=_id(obj, "source_id"),
        window_start=_ts(obj, "window_start"),
        detected_at=_ts(obj, "detected_at"),
        severity=severity,
        detector=_str(obj, "detector"),
        summary=_str(obj, "summary"),
        evidence=_dict(obj, "evidence"),
    )


def _nonneg(obj: Json, key: str, limit: int) -> int:
    value = _int(obj, key)
    if not 0 <= value <= limit:
        raise InvalidMessage("bad_field", f"{key!r} must be between 0 and {limit}")
    return value


# Bounds on what a clip message may ask for, whoever wrote it: a minute each side (the settings
# allow 30 s), and no more boxes than a frame can sensibly carry.
_CLIP_MAX_SIDE_MS = 60_000
_CLIP_MAX_BOXES = 100


def decode_clip_request(raw: bytes) -> ClipRequest:
    obj = _obj(raw)
    if obj.get("type") != "clip_request":
        raise InvalidMessage("bad_type", f"expected a clip request, got {show(obj.get('type'))}")
    boxes = obj.get("boxes")
    if (
        not isinstance(boxes, list)
        or len(boxes) > _CLIP_MAX_BOXES
        or not all(isinstance(b, dict) for b in boxes)
    ):
        raise InvalidMessage("bad_field", f"'boxes' must be a list of at most {_CLIP_MAX_BOXES} objects")
    return ClipRequest(
        violation_id=_id(obj, "violation_id"),
        enterprise_id=_id(obj, "enterprise_id"),
        site_id=_id(obj, "site_id"),
        camera_id=_id(obj, "camera_id"),
        ts=_ts(obj, "ts"),
        before_ms=_nonneg(obj, "before_ms", _CLIP_MAX_SIDE_MS),
        after_ms=_nonneg(obj, "after_ms", _CLIP_MAX_SIDE_MS),
        box_ts=_ts(obj, "box_ts"),
        boxes=boxes,
        requested_at=_ts(obj, "requested_at"),
    )


def decode_clip_ready(raw: bytes) -> ClipReady:
    obj = _obj(raw)
    if obj.get("type") != "clip_ready":
        raise InvalidMessage("bad_type", f"expected a clip_ready, got {show(obj.get('type'))}")
    status = obj.get("status")
    sha = obj.get("sha256")
    truncated = obj.get("truncated")
    detail = obj.get("detail")
    if status not in ("ready", "failed"):
        raise InvalidMessage("bad_field", "'status' must be 'ready' or 'failed'")
    if not isinstance(sha, str) or (status == "ready" and not re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise InvalidMessage("bad_field", "'sha256' must be a SHA-256 (64 lowercase hex) when ready")
    if not isinstance(truncated, bool) or not isinstance(detail, str):
        raise InvalidMessage("bad_field", "'truncated' must be a boolean and 'detail' a string")
    return ClipReady(
        violation_id=_id(obj, "violation_id"),
        enterprise_id=_id(obj, "enterprise_id"),
        camera_id=_id(obj, "camera_id"),
        status=status,
        sha256=sha if status == "ready" else "",
        frames=_nonneg(obj, "frames", 100_000),
        duration_ms=_nonneg(obj, "duration_ms", 2 * _CLIP_MAX_SIDE_MS),
        truncated=truncated,
        detail=detail[:500],
        at=_ts(obj, "at"),
    )


def decode_live_watch(raw: bytes) -> LiveWatch:
    obj = _obj(raw)
    if obj.get("type") != "live_watch":
        raise InvalidMessage("bad_type", f"expected a live_watch, got {show(obj.get('type'))}")
    until = _int(obj, "until")
    if until != 0:
        until = _ts(obj, "until")
    return LiveWatch(
        camera_id=_id(obj, "camera_id"),
        enterprise_id=_id(obj, "enterprise_id"),
        watcher=_id(obj, "watcher"),
        until=until,
        at=_ts(obj, "at"),
    )
