"""Property-based tests of the MQTT boundary (ingest/payloads.py): whatever a device sends, the
parser returns messages or raises InvalidMessage with a reason and a detail, and valid readings
come out exactly as they went in."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ingest.payloads import MAX_METRICS, Limits, parse_payload, parse_topic
from tests.hostile import BOUNDED, hostile_bytes, json_safe, json_values
from vigil.errors import InvalidMessage
from vigil.events import MIN_TS_MS, DeviceEvent, DeviceStatus, Telemetry, decode_device_message, encode
from vigil.registry import Device

NOW = 1_700_000_000_000
DEVICE = Device("freezer-1", "ent-1", "site-1", "freezer", {})
LIMITS = Limits(max_payload_bytes=16 * 1024, max_clock_skew_ms=300_000)
# Every reason the parser may give; a new one must be added here on purpose (the dead-letter
# topic is grouped by it, and dashboards count it).
REASONS = {
    "bad_topic", "oversized", "empty_payload", "bad_json", "not_an_object", "bad_timestamp",
    "clock_skew", "bad_field", "missing_field", "too_many_metrics", "bad_metric", "too_many_readings",
}  # fmt: skip

names = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True).filter(
    lambda n: n not in ("ts", "metrics", "values")
)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
timestamps = st.integers(MIN_TS_MS, NOW + LIMITS.max_clock_skew_ms)
metric_maps = st.dictionaries(names, finite, min_size=1, max_size=8)

valid_telemetry = st.one_of(
    st.fixed_dictionaries({"ts": timestamps, "metrics": metric_maps}),
    st.fixed_dictionaries({"ts": timestamps, "values": metric_maps}),
    metric_maps,
)
valid_event = st.fixed_dictionaries(
    {"event": names}, optional={"ts": timestamps, "data": st.dictionaries(st.text(max_size=8), json_safe)}
)
valid_status = st.one_of(
    st.fixed_dictionaries({"online": st.booleans()}, optional={"ts": timestamps}),
    st.fixed_dictionaries({"status": st.sampled_from(["online", "offline", "ONLINE"])}),
)
KINDS = {"telemetry": valid_telemetry, "event": valid_event, "status": valid_status}


def check(kind: str, payload: bytes) -> list[Any] | None:
    try:
        return parse_payload(kind, payload, DEVICE, NOW, LIMITS)
    except InvalidMessage as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail and len(exc.detail) < 400  # a sentence, never the whole payload echoed back
        return None


@BOUNDED
@given(st.data())
def test_any_payload_is_parsed_or_refused_with_a_reason(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    payload = data.draw(hostile_bytes(KINDS[kind]))
    messages = check(kind, payload)
    if messages is not None:
        assert messages and all(m.device_id == DEVICE.device_id for m in messages)
        for m in messages:
            # What ingest publishes, the consumers' decoder accepts (for a clock that is now).
            assert decode_device_message(encode(m)) == m if m.received_at >= NOW - 1 else True
            if isinstance(m, Telemetry):
                assert all(math.isfinite(v) for v in m.metrics.values())


@BOUNDED
@given(st.sampled_from(["telemetry", "event", "status"]), json_values)
def test_any_json_document_is_parsed_or_refused(kind: str, doc: Any) -> None:
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return  # not representable as JSON; sloppy encodings are covered above
    check(kind, raw)


@BOUNDED
@given(st.fixed_dictionaries({"ts": timestamps, "metrics": metric_maps}))
def test_valid_readings_round_trip(doc: dict[str, Any]) -> None:
    [reading] = parse_payload("telemetry", orjson.dumps(doc), DEVICE, NOW, LIMITS)
    assert isinstance(reading, Telemetry)
    assert reading.ts == doc["ts"]
    assert reading.metrics == {k: float(v) for k, v in doc["metrics"].items()}
    assert decode_device_message(encode(reading)) == reading


@BOUNDED
@given(st.lists(st.fixed_dictionaries({"ts": timestamps, "values": metric_maps}), min_size=1, max_size=20))
def test_thingsboard_lists_round_trip_in_order(docs: list[dict[str, Any]]) -> None:
    readings = parse_payload("telemetry", orjson.dumps(docs), DEVICE, NOW, LIMITS)
    assert [(r.ts, r.metrics) for r in readings if isinstance(r, Telemetry)] == [
        (d["ts"], {k: float(v) for k, v in d["values"].items()}) for d in docs
    ]


@BOUNDED
@given(valid_event)
def test_valid_events_round_trip(doc: dict[str, Any]) -> None:
    [event] = parse_payload("event", orjson.dumps(doc), DEVICE, NOW, LIMITS)
    assert isinstance(event, DeviceEvent) and event.event == doc["event"]
    assert event.data == (doc.get("data") or {})


@BOUNDED
@given(valid_status)
def test_valid_statuses_round_trip(doc: dict[str, Any]) -> None:
    [status] = parse_payload("status", orjson.dumps(doc), DEVICE, NOW, LIMITS)
    expected = doc["online"] if "online" in doc else doc["status"].lower() == "online"
    assert isinstance(status, DeviceStatus) and status.online is expected


@BOUNDED
@given(st.integers(MAX_METRICS + 1, MAX_METRICS + 50), finite)
def test_too_many_metrics_is_refused(count: int, value: float) -> None:
    raw = orjson.dumps({"metrics": {f"m{i}": value for i in range(count)}})
    assert len(raw) <= LIMITS.max_payload_bytes  # refused for the count, not the size
    assert check("telemetry", raw) is None


@BOUNDED
@given(
    st.one_of(
        st.text(max_size=120),
        st.builds(
            lambda e, d, k: f"vigil/v1/{e}/{d}/{k}",
            st.text(max_size=70),
            st.text(max_size=70),
            st.sampled_from(["telemetry", "event", "status", "notices", "", "#", "+"]),
        ),
    )
)
def test_any_topic_is_parsed_or_refused(topic: str) -> None:
    try:
        enterprise, device, kind = parse_topic(topic)
    except InvalidMessage as exc:
        assert exc.reason == "bad_topic" and exc.detail
        return
    assert topic == f"vigil/v1/{enterprise}/{device}/{kind}"
    assert not {"#", "+", "/"} & set(enterprise + device)
