"""Event types that travel on Kafka, as frozen, slotted dataclasses.

Every value on a Vigil topic is a JSON object with `"v": 1` (the schema version) and `"type"`.
Encoding uses orjson, which serialises dataclasses natively; decoding validates every field, since
a Kafka topic is a boundary too (another version, another writer, a hand-made message).
Times are integer milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

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


def _envelope(obj: Json) -> tuple[str, str, str, str, int, int]:
    return (
        _id(obj, "enterprise_id"),
        _id(obj, "device_id"),
        _id(obj, "site_id"),
        _str(obj, "profile"),
        _ts(obj, "ts"),
        _ts(obj, "received_at"),
    )


def decode_device_message(raw: bytes) -> DeviceMessage:
    obj = _obj(raw)
    kind = obj.get("type")
    ent, dev, site, profile, ts, received = _envelope(obj)
    if kind == "telemetry":
        return Telemetry(ent, dev, site, profile, ts, _metrics(obj), received)
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
