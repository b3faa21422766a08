"""Recordings: lines round-trip text and binary payloads exactly, bad files are refused with the
line that is wrong, and recording then replaying through the real broker gives back the same
messages with their spacing scaled by the speed."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from shell.cli import main
from simulators.record import (
    Recorded,
    RecordingError,
    decode_line,
    encode_line,
    header,
    play,
    read_recording,
    record,
    replay_file,
    source_of,
    write_recording,
)
from tests.helpers import MqttTail, publish


def test_lines_round_trip_text_and_binary_payloads() -> None:
    for r in (
        Recorded(1.25, "vigil/v1/e/d/telemetry", b'{"ts": 1, "metrics": {"t": -1.5}}', 1, False),
        Recorded(0.0, "vigil/v1/e/d/status", b"offline", 1, True),
        Recorded(3.0, "cameras/c/jpeg", bytes(range(256)), 0, False),
        Recorded(4.5, "x", "温度 −18 °C".encode(), 2, False),
    ):
        line = encode_line(r)
        assert decode_line(line) == r
        assert ("payload_b64" in orjson.loads(line)) == (r.topic == "cameras/c/jpeg")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "not JSON"),
        (b"[1]", "a JSON object per line"),
        (b'{"t": -1, "topic": "a", "payload": ""}', "'t' must be seconds >= 0"),
        (b'{"t": 1, "payload": ""}', "'topic' must be a non-empty string"),
        (b'{"t": 1, "topic": "a"}', "needs 'payload'"),
        (b'{"t": 1, "topic": "a", "payload_b64": "***"}', "not valid base64"),
        (b'{"t": 1, "topic": "a", "payload": "", "qos": 3}', "'qos' must be 0, 1 or 2"),
        (b'{"t": 1, "topic": "a", "payload": "", "retain": 1}', "'retain' must be true or false"),
    ],
)
def test_bad_lines_are_refused_with_where_and_why(line: bytes, message: str) -> None:
    with pytest.raises(RecordingError, match=f"here: .*{message}"):
        decode_line(line, "here: ")


def test_files_with_and_without_header(tmp_path: Path) -> None:
    records = [Recorded(float(i), f"t/{i}", b"x") for i in range(3)]
    path = tmp_path / "r.jsonl"
    assert write_recording(path, records, header("test", extra=1)) == 3
    head, back = read_recording(path)
    assert back == records and head["source"] == "test" and head["extra"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes(b"\n".join(encode_line(r) for r in records) + b"\n\n")
    assert read_recording(bare) == ({}, records)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"format": "vigil-recording", "version": 99}\n')
    with pytest.raises(RecordingError, match="not a vigil-recording version 1 file"):
        read_recording(bad)
    bad.write_bytes(encode_line(records[0]) + b"\n{oops\n")
    with pytest.raises(RecordingError, match=r"bad.jsonl:2: not JSON"):
        read_recording(bad)
    with pytest.raises(RecordingError, match="cannot read"):
        read_recording(tmp_path / "missing.jsonl")


def test_sources_are_devices_and_kinds() -> None:
    assert source_of("vigil/v1/ent/freezer-1/telemetry") == ("freezer-1", "telemetry")
    assert source_of("other/topic") == ("other/topic", "other")


async def test_record_then_replay_through_the_broker(settings: Any, uid: str, tmp_path: Path) -> None:
    url = settings.mqtt_url
    topic = f"vigil/v1/rec-{uid}"
    sent = [
        (f"{topic}/d-1/telemetry", b'{"ts": 1, "metrics": {"temperature": -20.5}}'),
        (f"{topic}/d-1/event", b'{"event": "door_open"}'),
        (f"{topic}/d-2/status", b"offline"),
        (f"{topic}/d-2/blob", bytes([0, 255, 1, 254])),
    ]
    path = tmp_path / "rec.jsonl"
    recording = asyncio.create_task(record(path, url, topic=f"{topic}/#", duration_s=3.0))
    await asyncio.sleep(1.0)  # subscribed
    for i, (t, payload) in enumerate(sent):
        await asyncio.to_thread(publish, url, t, payload)
        if i == 1:
            await asyncio.sleep(0.5)
    assert await recording == len(sent)
    head, records = read_recording(path)
    assert head["topic"] == f"{topic}/#"
    assert [(r.topic, r.payload, r.qos, r.retain) for r in records] == [(t, p, 1, False) for t, p in sent]
    assert records[2].t_s - records[1].t_s >= 0.45  # the pause is in the recording

    # Replayed twice as fast: the same messages, the pause halved (and never shortened further).
    async with MqttTail(url, f"{topic}/#") as tail:
        stats = await replay_file(path, url, speed=2.0)
        got = [await tail.next(timeout=10) for _ in sent]
    assert got == sent
    assert stats.sent == len(sent) and stats.by_source[("d-1", "telemetry")] == 1
    assert stats.wall_s >= (records[-1].t_s - records[0].t_s) / 2 - 0.01
    assert "d-1" in stats.summary() and "4 messages" in stats.summary()


async def test_play_paces_by_speed_and_refuses_nonsense(settings: Any, uid: str) -> None:
    records = [Recorded(t, f"vigil/v1/pace-{uid}/d/telemetry", b"{}") for t in (10.0, 10.5, 11.0, 12.0)]
    stats = await play(records, settings.mqtt_url, speed=4.0)
    assert 0.5 <= stats.wall_s < 3  # two seconds of recording at x4, from the first message
    fast = await play(records, settings.mqtt_url, speed=math.inf)
    assert fast.wall_s < 0.5
    with pytest.raises(Exception, match="speed must be above 0"):
        await play(records, settings.mqtt_url, speed=0)


def test_cli_replay_and_record(
    settings: Any, uid: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    write_recording(path, [Recorded(0.0, f"vigil/v1/cli-{uid}/d/telemetry", b"{}")], header("t"))
    assert main(["replay", str(path), "--speed", "inf", "--mqtt", settings.mqtt_url]) == 0
    assert "1 messages" in capsys.readouterr().out
    assert main(["record", str(tmp_path / "out.jsonl"), "--duration", "0.5", "--mqtt", settings.mqtt_url,
                 "--topic", f"vigil/v1/cli-{uid}/#"]) == 0  # fmt: skip
    assert "recorded 0 messages" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--mqtt", settings.mqtt_url]) == 2
