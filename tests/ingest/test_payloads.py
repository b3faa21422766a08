"""Pure tests of topic and payload validation: every accepted form, every rejection reason, and a
seeded fuzz loop showing that no input makes the parser raise anything but InvalidMessage."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import orjson
import pytest

from ingest.payloads import (
    MAX_METRICS,
    MAX_READINGS,
    MIN_TS_MS,
    Limits,
    parse_payload,
    parse_topic,
    timestamp,
)
from vigil.errors import InvalidMessage
from vigil.events import DeviceEvent, DeviceStatus, Telemetry
from vigil.registry import Device
from vigil.settings import Settings

NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DEVICE = Device("freezer-1", "ent-1", "site-1", "freezer", {})
LIMITS = Limits(max_payload_bytes=16 * 1024, max_clock_skew_ms=300_000)


def parse(kind: str, payload: Any) -> list[Any]:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return parse_payload(kind, raw, DEVICE, NOW, LIMITS)


def reason(kind: str, payload: Any) -> str:
    with pytest.raises(InvalidMessage) as caught:
        parse(kind, payload)
    assert caught.value.detail  # every refusal says what was wrong
    return caught.value.reason


# --- topics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["telemetry", "event", "status"])
def test_topic_parts(kind: str) -> None:
    assert parse_topic(f"vigil/v1/ent_1/dev-A9/{kind}") == ("ent_1", "dev-A9", kind)


@pytest.mark.parametrize(
    "topic",
    [
        "vigil/v1/ent/notices",  # the enterprise notice topic is not device traffic
        "vigil/v1/ent/dev/telemetry/extra",
        "vigil/v2/ent/dev/telemetry",
        "other/v1/ent/dev/telemetry",
        "vigil/v1/ent/dev/metrics",
        "vigil/v1//dev/telemetry",
        "vigil/v1/ent/de v/telemetry",
        "vigil/v1/ent/dev\n/telemetry",
        f"vigil/v1/{'e' * 65}/dev/telemetry",
        "vigil/v1/ent/设备/telemetry",
        "",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_topic(topic)
    assert caught.value.reason == "bad_topic"


def test_limits_from_settings() -> None:
    s = Settings(ingest_max_payload_bytes=2048, ingest_max_clock_skew_s=1.5)
    assert Limits.from_settings(s) == Limits(max_payload_bytes=2048, max_clock_skew_ms=1500)


# --- telemetry forms ----------------------------------------------------------------------------


def test_vigil_form() -> None:
    [reading] = parse("telemetry", {"ts": NOW - 1000, "metrics": {"temperature": -18.5, "door.open": 1}})
    assert reading == Telemetry(
        "ent-1", "freezer-1", "site-1", "freezer", NOW - 1000, {"temperature": -18.5, "door.open": 1.0}, NOW
    )


def test_iso_timestamps() -> None:
    [utc] = parse("telemetry", {"ts": "2023-11-14T22:13:19Z", "metrics": {"t": 1}})
    [beijing] = parse("telemetry", {"ts": "2023-11-15T06:13:19.500+08:00", "metrics": {"t": 1}})
    assert utc.ts == NOW - 1000
    assert beijing.ts == NOW - 500


def test_ts_is_optional() -> None:
    [reading] = parse("telemetry", {"metrics": {"t": 1}})
    assert reading.ts == NOW and reading.received_at == NOW
    assert parse("telemetry", {"ts": None, "metrics": {"t": 1}})[0].ts == NOW


def test_thingsboard_values_form() -> None:
    [reading] = parse("telemetry", {"ts": NOW - 5, "values": {"temperature": 4.2}})
    assert reading.metrics == {"temperature": 4.2} and reading.ts == NOW - 5


def test_thingsboard_list_yields_each_reading() -> None:
    readings = parse(
        "telemetry",
        [{"ts": NOW - 2000, "values": {"t": 1}}, {"ts": NOW - 1000, "values": {"t": 2, "h": 50}}],
    )
    assert [(r.ts, r.metrics) for r in readings] == [
        (NOW - 2000, {"t": 1.0}),
        (NOW - 1000, {"t": 2.0, "h": 50.0}),
    ]


def test_thingsboard_bare_form() -> None:
    [reading] = parse("telemetry", {"temperature": 1.5, "humidity": 40})
    assert reading.metrics == {"temperature": 1.5, "humidity": 40.0} and reading.ts == NOW
    [stamped] = parse("telemetry", {"ts": NOW - 1, "temperature": 1.5})
    assert stamped.metrics == {"temperature": 1.5} and stamped.ts == NOW - 1


def test_allowed_clock_skew_and_bounds() -> None:
    assert parse("telemetry", {"ts": NOW + 300_000, "metrics": {"t": 1}})[0].ts == NOW + 300_000
    assert parse("telemetry", {"ts": MIN_TS_MS, "metrics": {"t": 1}})[0].ts == MIN_TS_MS
    assert parse("telemetry", {"ts": float(NOW - 7), "metrics": {"t": 1}})[0].ts == NOW - 7


# --- telemetry rejections -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe{}", "bad_json"),
        (b'{"metrics": {"t": 1}', "bad_json"),
        (b"", "empty_payload"),
        (b"  \n", "empty_payload"),
        (b"x" * (16 * 1024 + 1), "oversized"),
        (b"42", "not_an_object"),
        (b'"hello"', "not_an_object"),
        ([1, 2], "not_an_object"),
        ({"metrics": {}}, "missing_field"),
        ({}, "missing_field"),
        ({"ts": NOW}, "missing_field"),
        ([], "missing_field"),
        ([{"ts": NOW, "temperature": 1}], "missing_field"),  # bare form only at the top level
        ({"metrics": [1, 2]}, "bad_field"),
        ({"values": "hot"}, "bad_field"),
        ({"metrics": {"t": "12"}}, "bad_metric"),
        ({"metrics": {"t": True}}, "bad_metric"),
        ({"metrics": {"t": None}}, "bad_metric"),
        ({"metrics": {"t": {"v": 1}}}, "bad_metric"),
        ({"metrics": {"bad name": 1}}, "bad_metric"),
        ({"metrics": {"": 1}}, "bad_metric"),
        ({"metrics": {"m" * 65: 1}}, "bad_metric"),
        ({"temperature": 1.5, "state": "on"}, "bad_metric"),
        ({"metrics": {f"m{i}": i for i in range(MAX_METRICS + 1)}}, "too_many_metrics"),
        ([{"values": {"t": 1}}] * (MAX_READINGS + 1), "too_many_readings"),
        ({"ts": NOW + 300_001, "metrics": {"t": 1}}, "clock_skew"),
        ({"ts": 10**17, "metrics": {"t": 1}}, "clock_skew"),
        ({"ts": MIN_TS_MS - 1, "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": NOW // 1000, "metrics": {"t": 1}}, "bad_timestamp"),  # seconds, not ms
        ({"ts": -1, "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": True, "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": [NOW], "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": "yesterday", "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": "2023-11-14T22:13:19", "metrics": {"t": 1}}, "bad_timestamp"),  # no offset
        ({"ts": "1999-12-31T23:59:59Z", "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": "0001-01-01T00:00:00+14:00", "metrics": {"t": 1}}, "bad_timestamp"),
        ({"ts": "2" * 100, "metrics": {"t": 1}}, "bad_timestamp"),
    ],
)
def test_telemetry_rejections(payload: Any, expected: str) -> None:
    assert reason("telemetry", payload) == expected


def test_non_finite_numbers_are_not_json() -> None:
    assert reason("telemetry", b'{"metrics": {"t": NaN}}') == "bad_json"
    assert reason("telemetry", b'{"metrics": {"t": 1e999}}') == "bad_json"


def test_seconds_hint_in_detail() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse("telemetry", {"ts": NOW // 1000, "metrics": {"t": 1}})
    assert "seconds" in caught.value.detail


def test_timestamp_helper_defaults_to_received_time() -> None:
    assert timestamp({}, NOW) == NOW


# --- events -------------------------------------------------------------------------------------


def test_event() -> None:
    [event] = parse("event", {"ts": NOW - 3, "event": "fault.E42", "data": {"floor": 3}})
    assert event == DeviceEvent(
        "ent-1", "freezer-1", "site-1", "freezer", NOW - 3, "fault.E42", {"floor": 3}, NOW
    )
    [bare] = parse("event", {"event": "door_open"})
    assert bare.data == {} and bare.ts == NOW


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"data": {}}, "missing_field"),
        ({"event": 3}, "bad_field"),
        ({"event": ""}, "bad_field"),
        ({"event": "door open"}, "bad_field"),
        ({"event": "door", "data": [1]}, "bad_field"),
        ({"event": "door", "ts": "soon"}, "bad_timestamp"),
        ({"event": "door", "ts": NOW + 10**9}, "clock_skew"),
        (["door"], "not_an_object"),
        (b"door_open", "bad_json"),
    ],
)
def test_event_rejections(payload: Any, expected: str) -> None:
    assert reason("event", payload) == expected


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b"offline", False),
        (b"online", True),
        (b" OFFLINE\n", False),
        (b'"offline"', False),
        ({"online": True}, True),
        ({"online": False, "ts": NOW - 9}, False),
        ({"status": "offline"}, False),
        ({"status": "Online"}, True),
    ],
)
def test_status_forms(payload: Any, online: bool) -> None:
    [status] = parse("status", payload)
    assert isinstance(status, DeviceStatus)
    assert status.online is online and status.device_id == "freezer-1" and status.received_at == NOW


def test_status_keeps_device_timestamp() -> None:
    assert parse("status", {"online": False, "ts": NOW - 9})[0].ts == NOW - 9
    assert parse("status", b"offline")[0].ts == NOW


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"gone", "bad_json"),
        ({"online": "yes"}, "bad_field"),
        ({"online": 1}, "bad_field"),
        ({"status": "asleep"}, "bad_field"),
        ({"state": "online"}, "missing_field"),
        ({"online": True, "ts": 5}, "bad_timestamp"),
        (b"true", "not_an_object"),
    ],
)
def test_status_rejections(payload: Any, expected: str) -> None:
    assert reason("status", payload) == expected


def test_unknown_kind() -> None:
    assert reason("metrics", {"metrics": {"t": 1}}) == "bad_topic"


# --- fuzz: nothing but InvalidMessage, whatever the bytes -----------------------------------------


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice(
            [
                None,
                True,
                False,
                rng.randint(-(2**63), 2**63 - 1),
                rng.uniform(-1e308, 1e308),
                NOW + rng.randint(-(10**6), 10**6),
                "".join(rng.choice("ab.-_ ZT:+0123456789é\x00") for _ in range(rng.randint(0, 30))),
                "2023-11-14T22:13:19Z",
                "online",
                "offline",
            ]
        )
    if roll < 0.6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["ts", "metrics", "values", "event", "data", "online", "status", "t", "temperature", "x y"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _fuzz_inputs(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    doc = orjson.dumps(_random_json(rng))
    if roll < 0.5:
        return doc[: rng.randint(0, len(doc))]  # truncated
    if roll < 0.6 and doc:
        flipped = bytearray(doc)
        flipped[rng.randrange(len(flipped))] = rng.getrandbits(8)
        return bytes(flipped)
    return doc


def test_fuzz_only_invalid_message_escapes() -> None:
    rng = random.Random(20240501)
    accepted = refused = 0
    for _ in range(20_000):
        payload = _fuzz_inputs(rng)
        kind = rng.choice(["telemetry", "event", "status", "bogus"])
        try:
            parse_payload(kind, payload, DEVICE, NOW, LIMITS)
            accepted += 1
        except InvalidMessage as exc:
            assert exc.reason and exc.detail
            refused += 1
    assert accepted > 100 and refused > 100  # the generator reaches both sides


def test_fuzz_topics() -> None:
    rng = random.Random(7)
    alphabet = "vigl/1tyemrsnu+#$ \x00é-_"
    for _ in range(5_000):
        topic = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.5:
            topic = "vigil/v1/" + topic
        with contextlib.suppress(InvalidMessage):
            parse_topic(topic)


# --- the compiled (msgspec) telemetry decoder judges exactly as the checked (orjson) path ---------

_TRICKY = [
    b"1", b"-5.2", b"1e400", b"1" + b"0" * 400, b"9007199254740993", b"18446744073709551616", b"true",
    b"null", b'"x"', b'"\\ud800"', b"[]", b"{}", b"1.5e-400", b"-0", b"1E5",
]  # fmt: skip
_TS = [b"1700000000000", b"1700000000000.5", b"1700000000", b'"2023-11-14T22:13:20Z"',
       b'"2023-11-14T22:13:20"', b"true", b"null", b"1e400", b"99999999999999999999", b'"x"']  # fmt: skip
_NAMES = [b"temperature", b"h", b"a b", b"", b"\\u0061", b"x" * 65, b"boiler.pressure", b"ts"]


def _near_telemetry(rng: random.Random) -> bytes:
    """An object close to a valid reading: the shapes the compiled decoder accepts, and one step off."""
    fields = []
    for key in ("ts", "metrics", "values", "extra", "metrics"):
        if rng.random() < 0.5:
            continue
        if key == "ts":
            fields.append(b'"ts":' + rng.choice(_TS))
        elif key == "extra":
            fields.append(b'"' + rng.choice(_NAMES) + b'":' + rng.choice(_TRICKY))
        else:
            values = _TRICKY if rng.random() < 0.3 else _TRICKY[:2]
            pairs = [b'"' + rng.choice(_NAMES) + b'":' + rng.choice(values) for _ in range(rng.randint(0, 3))]
            fields.append(b'"' + key.encode() + b'":{' + b",".join(pairs) + b"}")
    return b"{" + b",".join(fields) + b"}"


def _judged(payload: bytes) -> Any:
    try:
        return parse_payload("telemetry", payload, DEVICE, NOW, LIMITS)
    except InvalidMessage as exc:
        return exc.reason


def test_the_compiled_decoder_accepts_and_refuses_exactly_as_the_checked_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(22)
    payloads = [_near_telemetry(rng) for _ in range(4000)] + [_fuzz_inputs(rng) for _ in range(2000)]
    fast = [_judged(p) for p in payloads]
    monkeypatch.setattr("ingest.payloads._compiled_telemetry", lambda *_: None)  # the orjson path only
    slow = [_judged(p) for p in payloads]
    for payload, got, expected in zip(payloads, fast, slow, strict=True):
        assert got == expected, payload
        assert type(got) is type(expected)
    assert sum(isinstance(r, list) for r in fast) > 200  # the accepting shapes were exercised


def test_the_compiled_detector_decode_matches_the_checked_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.events import decode_device_message, encode

    rng = random.Random(23)
    good = [r for p in (_near_telemetry(rng) for _ in range(3000)) if isinstance(r := _judged(p), list)]
    raws = [encode(t) for ts in good for t in ts]
    raws += [raw.replace(b'"v":1', b'"v":2') for raw in raws[:50]]
    raws += [raw.replace(b'"metrics":{', b'"metrics":{"big":18446744073709551616,') for raw in raws[:50]]
    raws += [raw[:-1] + b',"x":1e400}' for raw in raws[:50]] + [b"[]", b"\xff", b'{"v":1}']

    def decoded(raw: bytes) -> Any:
        try:
            return decode_device_message(raw)
        except InvalidMessage as exc:
            return exc.reason

    fast = [decoded(raw) for raw in raws]
    monkeypatch.setattr("vigil.events._compiled_telemetry", lambda *_: None)
    assert fast == [decoded(raw) for raw in raws]
