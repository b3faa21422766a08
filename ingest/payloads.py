"""Parsing and validation of device MQTT traffic: pure functions, no I/O.

Everything here runs on untrusted bytes, so the one promise every function keeps is that it
returns a value or raises `InvalidMessage` with a short snake_case `reason` (what the dead-letter
topic is grouped by) and a `detail` sentence saying what was wrong and what was expected. No other
exception escapes, whatever the input: the bridge relies on that to keep one bad message from
stopping the stream.

Accepted payloads, per topic kind (`vigil/v1/{enterprise_id}/{device_id}/{kind}`):

- `telemetry`: Vigil's own `{"ts": <ms | ISO-8601>, "metrics": {name: number}}`; ThingsBoard's
  `{"ts": <ms>, "values": {...}}`, a list of those (several readings in one message), or its bare
  `{"temperature": 1.5, ...}` (every key but `ts` is a metric, so `ts`, `metrics` and `values`
  cannot be metric names there).
- `event`: `{"ts"?, "event": "<name>", "data"?: {...}}`.
- `status`: `{"ts"?, "online": true|false}`, `{"ts"?, "status": "online"|"offline"}`, or the bare
  payload `online` / `offline`, which is what an MQTT last will usually carries.

`ts` is optional everywhere; without it the reading is stamped with the time the bridge received it.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from vigil.errors import InvalidMessage, show
from vigil.events import ID_PATTERN as _ID
from vigil.events import MIN_TS_MS, DeviceEvent, DeviceMessage, DeviceStatus, Telemetry
from vigil.registry import Device
from vigil.settings import Settings
from vigil.topics import DEVICE_MESSAGE_KINDS, MQTT_PREFIX

# Metric and event names also allow dots, for dotted namespaces ("boiler.pressure").
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

MAX_METRICS = 256
# A ThingsBoard list is a device's backlog after an outage; the payload size limit bounds it too,
# but a count keeps one message from turning into thousands of Kafka records.
MAX_READINGS = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_RESERVED = frozenset({"ts", "metrics", "values"})
_STATUS_WORDS = {"online": True, "offline": False}

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds a payload must respect; normally built from the settings."""

    max_payload_bytes: int = 64 * 1024
    max_clock_skew_ms: int = 300_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_payload_bytes=settings.ingest_max_payload_bytes,
            max_clock_skew_ms=round(settings.ingest_max_clock_skew_s * 1000),
        )


DEFAULT_LIMITS = Limits()


def _show(value: object, limit: int = 60) -> str:
    """A bounded repr of untrusted input, for detail sentences and logs (bounded in depth too)."""
    return show(value, limit)


def parse_topic(topic: str) -> tuple[str, str, str]:
    """`vigil/v1/{enterprise_id}/{device_id}/{kind}` → (enterprise_id, device_id, kind)."""
    expected = f"expected {MQTT_PREFIX}/{{enterprise_id}}/{{device_id}}/{{{'|'.join(DEVICE_MESSAGE_KINDS)}}}"
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != MQTT_PREFIX:
        raise InvalidMessage("bad_topic", f"topic {_show(topic)} has the wrong shape; {expected}")
    _, _, enterprise_id, device_id, kind = parts
    if kind not in DEVICE_MESSAGE_KINDS:
        raise InvalidMessage("bad_topic", f"topic kind {_show(kind)} is unknown; {expected}")
    for label, value in (("enterprise_id", enterprise_id), ("device_id", device_id)):
        if not _ID.fullmatch(value):
            raise InvalidMessage(
                "bad_topic", f"{label} {_show(value)} must be 1-64 characters of A-Z a-z 0-9 _ -"
            )
    return enterprise_id, device_id, kind


def check_size(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse an oversized payload before any work is spent on it."""
    if len(payload) > limits.max_payload_bytes:
        raise InvalidMessage(
            "oversized", f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes} bytes"
        )


def parse_payload(
    kind: str, payload: bytes, device: Device, received_at: int, limits: Limits = DEFAULT_LIMITS
) -> list[DeviceMessage]:
    """Validate one MQTT payload from `device` and turn it into the events to publish.

    Returns a list because a ThingsBoard telemetry list carries several readings; every other
    form yields exactly one message.
    """
    check_size(payload, limits)
    if not payload.strip():
        raise InvalidMessage("empty_payload", "payload is empty; expected a JSON document")
    if kind == "telemetry":
        fast = _compiled_telemetry(payload, device, received_at, limits)
        return [fast] if fast is not None else list(_telemetry(_json(payload), device, received_at, limits))
    if kind == "event":
        return [_event(_json(payload), device, received_at, limits)]
    if kind == "status":
        return [_status(payload, device, received_at, limits)]
    raise InvalidMessage("bad_topic", f"message kind {_show(kind)} is not one of {DEVICE_MESSAGE_KINDS}")


def attributes(
    payload: bytes, device: Device, received_at: int, limits: Limits = DEFAULT_LIMITS
) -> DeviceEvent:
    """ThingsBoard client attributes (`v1/devices/me/attributes`: `{"firmware": "1.2", ...}`) as an
    `attributes` event whose data is the object, stamped with the time of arrival."""
    check_size(payload, limits)
    if not payload.strip():
        raise InvalidMessage("empty_payload", "payload is empty; expected a JSON object of attributes")
    obj = _object(_json(payload), "an attributes payload")
    return DeviceEvent(
        device.enterprise_id, device.device_id, device.site_id, device.profile, received_at, "attributes",
        obj, received_at,
    )  # fmt: skip


def _json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(
            "bad_json", f"payload is not valid UTF-8 JSON ({_show(str(exc), 120)})"
        ) from None


def _object(value: Any, what: str) -> Json:
    if not isinstance(value, dict):
        raise InvalidMessage("not_an_object", f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def timestamp(obj: Json, received_at: int, limits: Limits = DEFAULT_LIMITS) -> int:
    """The `ts` of a payload object in epoch ms; absent or null means `received_at`."""
    return _timestamp(obj.get("ts"), received_at, limits)


def _timestamp(raw: object, received_at: int, limits: Limits) -> int:
    if raw is None:
        return received_at
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidMessage(
            "bad_timestamp", f"'ts' is {_show(raw)}; expected epoch milliseconds or an ISO-8601 string"
        )
    if isinstance(raw, str):
        ts = _iso_ms(raw)
    elif isinstance(raw, float) and not math.isfinite(raw):
        raise InvalidMessage("bad_timestamp", f"'ts' is {raw}; expected epoch milliseconds")
    else:
        ts = int(raw)
    if ts < MIN_TS_MS:
        hint = " (that looks like seconds; send milliseconds)" if ts >= MIN_TS_MS // 1000 else ""
        raise InvalidMessage(
            "bad_timestamp", f"'ts' {ts} is before 2000-01-01; expected epoch milliseconds{hint}"
        )
    if ts > received_at + limits.max_clock_skew_ms:
        ahead_s = (ts - received_at) / 1000
        raise InvalidMessage(
            "clock_skew",
            f"'ts' is {ahead_s:.0f} s in the future; at most {limits.max_clock_skew_ms / 1000:.0f} s of"
            " clock skew is accepted, check the device clock",
        )
    return ts


def _iso_ms(text: str) -> int:
    try:
        if len(text) > 64:
            raise ValueError("too long")
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidMessage(
            "bad_timestamp", f"'ts' {_show(text)} is not an ISO-8601 date-time such as 2024-05-01T08:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidMessage(
            "bad_timestamp", f"'ts' {_show(text)} has no UTC offset; add one, e.g. Z or +08:00"
        )
    try:
        return (parsed - _EPOCH) // _MS
    except OverflowError:
        raise InvalidMessage("bad_timestamp", f"'ts' {_show(text)} is out of range") from None


def metrics(values: Any, where: str = "'metrics'") -> dict[str, float]:
    """Validate a map of metric name → finite number; values come back as floats."""
    if not isinstance(values, dict):
        raise InvalidMessage("bad_field", f"{where} must be an object of metric name → number")
    if not values:
        raise InvalidMessage("missing_field", f"{where} has no metrics; expected at least one name → number")
    if len(values) > MAX_METRICS:
        raise InvalidMessage("too_many_metrics", f"{where} has {len(values)} metrics; at most {MAX_METRICS}")
    out: dict[str, float] = {}
    for name, value in values.items():
        if not _NAME.fullmatch(name):
            raise InvalidMessage(
                "bad_metric", f"metric name {_show(name)} must be 1-64 characters of A-Z a-z 0-9 _ . -"
            )
        # bool is an int in Python but never a measurement; JSON true is a device bug.
        number = math.nan
        if isinstance(value, int | float) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):  # an int beyond float range stays NaN
                number = float(value)
        if not math.isfinite(number):
            raise InvalidMessage("bad_metric", f"metric {name!r} is {_show(value)}; expected a finite number")
        out[name] = number
    return out


def _reading(obj: Json, device: Device, received_at: int, limits: Limits, *, bare: bool) -> Telemetry:
    if "metrics" in obj:
        values = metrics(obj["metrics"])
    elif "values" in obj:
        values = metrics(obj["values"], "'values'")
    elif bare:
        values = metrics({k: v for k, v in obj.items() if k not in _RESERVED}, "the payload")
    else:
        raise InvalidMessage(
            "missing_field", 'each reading in a list must look like {"ts": <ms>, "values": {name: number}}'
        )
    ts = timestamp(obj, received_at, limits)
    return Telemetry(
        device.enterprise_id, device.device_id, device.site_id, device.profile, ts, values, received_at
    )


class _Reading(msgspec.Struct, forbid_unknown_fields=True):
    """The common telemetry forms, `{"ts"?, "metrics": {...}}` and `{"ts"?, "values": {...}}`, as a
    compiled schema: decoded straight from bytes with no intermediate dict of the document. Unknown
    keys are refused (not skipped) so that nothing is accepted here that orjson would refuse: the
    slow path then judges it and gives the reason."""

    metrics: dict[str, float] | msgspec.UnsetType = msgspec.UNSET
    values: dict[str, float] | msgspec.UnsetType = msgspec.UNSET
    ts: int | float | str | None = None


_READING = msgspec.json.Decoder(_Reading)


def _compiled_telemetry(payload: bytes, device: Device, received_at: int, limits: Limits) -> Telemetry | None:
    """The reading of a payload in a common form, or None for anything else, valid or not: the
    orjson path (`_telemetry`) then accepts it or refuses it with its reason code, so a hostile
    payload is judged exactly as before; only good readings take this path."""
    try:
        doc = _READING.decode(payload)
    except Exception:  # invalid UTF-8 is a UnicodeDecodeError; any doubt: the checked path
        return None
    values = doc.metrics if doc.metrics is not msgspec.UNSET else doc.values
    if values is msgspec.UNSET or not values or len(values) > MAX_METRICS:
        return None
    for name, value in values.items():
        if not math.isfinite(value) or not _NAME.fullmatch(name):
            return None
    try:
        ts = _timestamp(doc.ts, received_at, limits)
    except Exception:  # a refusal, or an int orjson would have refused (msgspec keeps any size)
        return None
    return Telemetry(
        device.enterprise_id, device.device_id, device.site_id, device.profile, ts, values, received_at
    )


def thingsboard_telemetry(
    payload: bytes, device: Device, received_at: int, limits: Limits = DEFAULT_LIMITS
) -> list[Telemetry]:
    """`v1/devices/me/telemetry` as ThingsBoard takes it: the forms of `telemetry` above, and also a
    list of bare `{"name": number}` objects, which is what the SDK's `send_telemetry({...})` sends."""
    check_size(payload, limits)
    if not payload.strip():
        raise InvalidMessage("empty_payload", "payload is empty; expected a JSON document")
    return _telemetry(_json(payload), device, received_at, limits, bare_items=True)


def _telemetry(
    doc: Any, device: Device, received_at: int, limits: Limits, *, bare_items: bool = False
) -> list[Telemetry]:
    if isinstance(doc, list):
        if not doc:
            raise InvalidMessage("missing_field", "the reading list is empty; expected at least one reading")
        if len(doc) > MAX_READINGS:
            raise InvalidMessage(
                "too_many_readings", f"the list has {len(doc)} readings; at most {MAX_READINGS} per message"
            )
        return [
            _reading(_object(item, "each reading"), device, received_at, limits, bare=bare_items)
            for item in doc
        ]
    obj = _object(doc, "a telemetry payload")
    return [_reading(obj, device, received_at, limits, bare=True)]


def _event(doc: Any, device: Device, received_at: int, limits: Limits) -> DeviceEvent:
    obj = _object(doc, "an event payload")
    if "event" not in obj:
        raise InvalidMessage("missing_field", 'an event needs "event": "<name>", e.g. "door_open"')
    name = obj["event"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidMessage(
            "bad_field", f"'event' is {_show(name)}; expected 1-64 characters of A-Z a-z 0-9 _ . -"
        )
    data = obj.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise InvalidMessage("bad_field", f"'data' is {type(data).__name__}; expected a JSON object")
    ts = timestamp(obj, received_at, limits)
    return DeviceEvent(
        device.enterprise_id, device.device_id, device.site_id, device.profile, ts, name, data, received_at
    )


def _status(payload: bytes, device: Device, received_at: int, limits: Limits) -> DeviceStatus:
    word = payload.strip().lower()
    online: bool | None = _STATUS_WORDS.get(word.decode("ascii", "replace")) if len(word) <= 7 else None
    ts = received_at
    if online is None:
        doc = _json(payload)
        if isinstance(doc, str) and doc.lower() in _STATUS_WORDS:
            online = _STATUS_WORDS[doc.lower()]
        else:
            obj = _object(doc, "a status payload")
            online = _online(obj)
            ts = timestamp(obj, received_at, limits)
    return DeviceStatus(
        device.enterprise_id, device.device_id, device.site_id, device.profile, ts, online, received_at
    )


def _online(obj: Json) -> bool:
    if "online" in obj:
        value = obj["online"]
        if not isinstance(value, bool):
            raise InvalidMessage("bad_field", f"'online' is {_show(value)}; expected true or false")
        return value
    if "status" in obj:
        value = obj["status"]
        if not isinstance(value, str) or value.lower() not in _STATUS_WORDS:
            raise InvalidMessage("bad_field", f'\'status\' is {_show(value)}; expected "online" or "offline"')
        return _STATUS_WORDS[value.lower()]
    raise InvalidMessage(
        "missing_field", 'a status needs "online": true|false or "status": "online"|"offline"'
    )
