"""Decoding Kafka values is a boundary: every field is checked and refusals carry a reason."""

from __future__ import annotations

import orjson
import pytest

from vigil.errors import InvalidMessage
from vigil.events import Telemetry, Violation, decode_device_message, decode_violation, encode, violation_id
from vigil.kafka import now_ms

NOW = now_ms()


def a_violation(**changes: object) -> bytes:
    v = Violation(
        violation_id=violation_id("device", "d1", "COLD_CHAIN_FREEZER_WARM", NOW),
        code="COLD_CHAIN_FREEZER_WARM", state="active", enterprise_id="e1", site_id="s1",
        source_kind="device", source_id="d1", window_start=NOW, detected_at=NOW, severity="major",
        detector="t", summary="too warm",
    )  # fmt: skip
    return orjson.dumps(orjson.loads(encode(v)) | changes)


def test_round_trip():
    t = Telemetry("e1", "d1", "s1", "freezer", NOW, {"temperature": -19.5}, NOW)
    assert decode_device_message(encode(t)) == t
    assert decode_violation(a_violation()).source_id == "d1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"enterprise_id": "e1/+"}, "bad_field"),  # would become an MQTT wildcard topic
        ({"enterprise_id": "#"}, "bad_field"),
        ({"source_id": "x" * 65}, "bad_field"),
        ({"detected_at": 2**62}, "bad_timestamp"),  # past datetime's range
        ({"window_start": NOW + 2 * 86_400_000}, "bad_timestamp"),
        ({"window_start": 1_700_000_000}, "bad_timestamp"),  # seconds, not milliseconds
        ({"detected_at": True}, "bad_field"),
        ({"code": "NOT_A_CODE"}, "unknown_code"),
        ({"state": "maybe"}, "bad_field"),
        ({"severity": "apocalyptic"}, "bad_field"),
        ({"evidence": []}, "bad_field"),
        ({"v": 2}, "bad_version"),
        ({"type": "telemetry"}, "bad_type"),
    ],
)
def test_violation_refusals(changes, reason):
    with pytest.raises(InvalidMessage) as err:
        decode_violation(a_violation(**changes))
    assert err.value.reason == reason


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b"{", b'{"v": 1, "type": "telemetry"}', "é".encode()])
def test_device_message_garbage(raw):
    with pytest.raises(InvalidMessage):
        decode_device_message(raw)


def test_device_message_with_non_finite_metric_is_refused():
    raw = encode(Telemetry("e1", "d1", "s1", "freezer", NOW, {"t": 1.0}, NOW)).replace(b"1.0", b"1e999")
    with pytest.raises(InvalidMessage) as err:
        decode_device_message(raw)
    assert err.value.reason in ("bad_metric", "bad_json")
