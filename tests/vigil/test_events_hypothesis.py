"""Property-based tests of the Kafka-side decoders (vigil/events.py, vigil/frames.py): a topic is a
boundary too, so any value or header set is decoded or refused with InvalidMessage and a reason,
and what Vigil itself encodes decodes to the same thing."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile import BOUNDED, EDGE_NUMBERS, hostile_bytes, json_values
from vigil.catalogue import SEVERITIES, catalogue
from vigil.errors import InvalidMessage
from vigil.events import (
    MIN_TS_MS,
    DeviceEvent,
    DeviceStatus,
    Telemetry,
    Violation,
    decode_device_message,
    decode_violation,
    encode,
    violation_id,
)
from vigil.frames import SEND_REASONS, FrameMeta, decode_frame_meta
from vigil.kafka import now_ms

NOW = now_ms()
ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
stamps = st.integers(MIN_TS_MS, NOW)
finite = st.floats(allow_nan=False, allow_infinity=False)
metric_maps = st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), finite, min_size=1, max_size=5)

telemetry = st.builds(Telemetry, ids, ids, ids, ids, stamps, metric_maps, stamps)
events = st.builds(
    DeviceEvent,
    ids,
    ids,
    ids,
    ids,
    stamps,
    ids,
    st.dictionaries(st.text(max_size=5), st.integers(0, 9)),
    stamps,
)
statuses = st.builds(DeviceStatus, ids, ids, ids, ids, stamps, st.booleans(), stamps)
device_messages = st.one_of(telemetry, events, statuses)
violations = st.builds(
    Violation,
    violation_id=ids,
    code=st.sampled_from(sorted(catalogue())),
    state=st.sampled_from(["active", "cleared"]),
    enterprise_id=ids,
    site_id=ids,
    source_kind=st.sampled_from(["device", "camera"]),
    source_id=ids,
    window_start=stamps,
    detected_at=stamps,
    severity=st.sampled_from(list(SEVERITIES)),
    detector=st.text(min_size=1, max_size=20),
    summary=st.text(min_size=1, max_size=50),
    evidence=st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3),
)


def as_dict(event: object) -> st.SearchStrategy[dict[str, Any]]:
    return st.just(orjson.loads(encode(event)))


def refused_or_decoded(decode: Any, raw: bytes) -> object | None:
    try:
        return decode(raw)
    except InvalidMessage as exc:
        assert exc.reason and exc.detail
        return None


@BOUNDED
@given(device_messages)
def test_device_messages_round_trip(message: Telemetry | DeviceEvent | DeviceStatus) -> None:
    assert decode_device_message(encode(message)) == message


@BOUNDED
@given(violations)
def test_violations_round_trip(v: Violation) -> None:
    assert decode_violation(encode(v)) == v


@BOUNDED
@given(device_messages.flatmap(lambda m: hostile_bytes(as_dict(m))))
def test_any_device_message_value_is_decoded_or_refused(raw: bytes) -> None:
    refused_or_decoded(decode_device_message, raw)


@BOUNDED
@given(violations.flatmap(lambda v: hostile_bytes(as_dict(v))))
def test_any_violation_value_is_decoded_or_refused(raw: bytes) -> None:
    refused_or_decoded(decode_violation, raw)


@BOUNDED
@given(device_messages, st.sampled_from(["ts", "received_at", "metrics", "v", "online"]), EDGE_NUMBERS)
def test_edge_numbers_in_any_field_are_refused_or_kept_exact(message: Any, key: str, number: Any) -> None:
    doc = orjson.loads(encode(message))
    doc[key] = {"t": number} if key == "metrics" else number
    decoded = refused_or_decoded(decode_device_message, json.dumps(doc, allow_nan=True).encode())
    if isinstance(decoded, Telemetry) and key == "metrics":
        assert decoded.metrics == {"t": number}


frame_headers = st.lists(
    st.tuples(
        st.sampled_from(
            ["camera_id", "enterprise_id", "site_id", "ts", "seq", "reason", "content-type", "x"]
        ),
        st.one_of(
            st.binary(max_size=70),
            ids.map(str.encode),
            stamps.map(lambda t: str(t).encode()),
            st.sampled_from([r.encode() for r in SEND_REASONS] + [b"image/jpeg", b"-1", b"1e3", b"\xff"]),
        ),
    ),
    max_size=10,
)


@BOUNDED
@given(frame_headers, st.one_of(st.none(), st.binary(max_size=40), st.just(b"\xff\xd8\xff\xe0")))
def test_any_frame_record_is_decoded_or_refused(
    headers: list[tuple[str, bytes]], value: bytes | None
) -> None:
    try:
        meta = decode_frame_meta(headers, value, now_ms=NOW)
    except InvalidMessage as exc:
        assert exc.reason and exc.detail
        return
    assert isinstance(meta, FrameMeta) and meta.reason in SEND_REASONS


@BOUNDED
@given(ids, ids, ids, stamps, st.integers(0, 2**40), st.sampled_from(SEND_REASONS))
def test_frame_headers_round_trip(cam: str, ent: str, site: str, ts: int, seq: int, reason: Any) -> None:
    meta = FrameMeta(cam, ent, site, ts, seq, reason)
    assert decode_frame_meta(meta.headers(), b"\xff\xd8\xff\xe0", now_ms=NOW) == meta


@BOUNDED
@given(json_values)
def test_any_json_document_is_not_a_violation_by_accident(doc: Any) -> None:
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return
    refused_or_decoded(decode_violation, raw)
    assert violation_id("device", "d", "C", 1) == violation_id("device", "d", "C", 1)
