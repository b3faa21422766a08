"""Recordings of MQTT traffic: capture what devices publish, play it back with the same spacing.

A recording is a JSON-lines file. The first line is a header, `{"format": "vigil-recording",
"version": 1, "source": …, "created": …}`; every other line is one message:

    {"t": 12.5, "topic": "vigil/v1/acme/freezer-1/telemetry", "payload": "{…}", "qos": 1, "retain": false}

`t` is seconds from the start of the recording (when it was received, or for a rendered scenario
its scenario time), `payload` the payload as text when it is UTF-8, else `payload_b64` (base64).
Payloads are kept byte for byte, timestamps included: a replay sends what was sent. Played back at
`speed` N, a message goes out at t / N seconds after the first.

`vigil record FILE` writes one from a broker, `vigil replay FILE` plays one into a broker, and
`vigil simulate SCENARIO --to FILE` renders a scenario straight into one (see `simulators.scenario`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

import orjson
import paho.mqtt.client as paho

from vigil import mqtt
from vigil.errors import InfrastructureUnavailable, VigilError
from vigil.progress import Progress

FORMAT: Final = "vigil-recording"
VERSION: Final = 1
# Messages published but not yet acknowledged by the broker, at most: enough to keep the pipe
# full, few enough that a broker that stops acknowledging stops the replay within a window.
WINDOW: Final = 1000
ACK_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Recorded:
    """One MQTT message of a recording, `t_s` seconds from its start."""

    t_s: float
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class RecordingError(VigilError):
    """A recording file that cannot be read, with the line that is wrong."""


def encode_line(r: Recorded) -> bytes:
    line: dict[str, Any] = {"t": round(r.t_s, 3), "topic": r.topic}
    try:
        line["payload"] = r.payload.decode("utf-8")
    except UnicodeDecodeError:
        line["payload_b64"] = base64.b64encode(r.payload).decode("ascii")
    line["qos"], line["retain"] = r.qos, r.retain
    return orjson.dumps(line)


def decode_line(raw: bytes | str, where: str = "") -> Recorded:
    def bad(why: str) -> RecordingError:
        return RecordingError(f"{where}{why}")

    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise bad("expected a JSON object per line")
    t, topic, qos, retain = obj.get("t"), obj.get("topic"), obj.get("qos", 1), obj.get("retain", False)
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise bad(f"'t' must be seconds >= 0, got {t!r}")
    if not isinstance(topic, str) or not topic:
        raise bad(f"'topic' must be a non-empty string, got {topic!r}")
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        raise bad(f"'qos' must be 0, 1 or 2, got {qos!r}")
    if not isinstance(retain, bool):
        raise bad(f"'retain' must be true or false, got {retain!r}")
    if isinstance(obj.get("payload"), str):
        payload = obj["payload"].encode("utf-8")
    elif isinstance(obj.get("payload_b64"), str):
        try:
            payload = base64.b64decode(obj["payload_b64"], validate=True)
        except binascii.Error:
            raise bad("'payload_b64' is not valid base64") from None
    else:
        raise bad("needs 'payload' (text) or 'payload_b64' (base64)")
    return Recorded(float(t), topic, payload, int(qos), retain)


def header(source: str, **meta: Any) -> dict[str, Any]:
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return {"format": FORMAT, "version": VERSION, "source": source, "created": created, **meta}


def write_recording(path: str | os.PathLike[str], records: Iterable[Recorded], head: dict[str, Any]) -> int:
    """Write a whole recording (atomically: a reader never sees half a file); returns the count."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("wb") as f:
        f.write(orjson.dumps(head) + b"\n")
        for r in records:
            f.write(encode_line(r) + b"\n")
            count += 1
    tmp.replace(path)
    return count


def read_recording(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Recorded]]:
    """The header (empty if the file has none) and the messages, in file order."""
    head: dict[str, Any] = {}
    records: list[Recorded] = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if number == 1 and line.lstrip().startswith(b'{"format"'):
            head = orjson.loads(line)
            if head.get("format") != FORMAT or head.get("version") != VERSION:
                raise RecordingError(
                    f"{path}: not a {FORMAT} version {VERSION} file "
                    f"(format {head.get('format')!r}, version {head.get('version')!r})"
                )
            continue
        records.append(decode_line(line, f"{path}:{number}: "))
    return head, records


# --- publishing ------------------------------------------------------------------------------


class Publisher:
    """One MQTT connection publishing many messages without waiting for each acknowledgement:
    at most `WINDOW` unacknowledged at a time; `flush()` waits for the rest."""

    def __init__(self, url: str, client_id: str = "") -> None:
        self._url = url
        self._client = mqtt.mqtt_client(url, client_id or f"vigil-replay-{os.getpid()}-{time.monotonic_ns()}")
        self._client.max_inflight_messages_set(100)
        self._slots = threading.Semaphore(WINDOW)
        self._lock = threading.Lock()
        self.sent = 0
        self.acked = 0
        self._client.on_publish = self._on_publish

    def _on_publish(self, *_: Any) -> None:  # paho's thread
        with self._lock:
            self.acked += 1
        self._slots.release()

    async def __aenter__(self) -> Self:
        await mqtt.connect(self._client, self._url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await asyncio.to_thread(mqtt.disconnect, self._client)

    async def send(self, r: Recorded) -> None:
        if not self._slots.acquire(blocking=False) and not await asyncio.to_thread(
            self._slots.acquire, True, ACK_TIMEOUT_S
        ):
            raise InfrastructureUnavailable(f"the MQTT broker acknowledged nothing for {ACK_TIMEOUT_S:g}s")
        info = self._client.publish(r.topic, r.payload, qos=r.qos, retain=r.retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise InfrastructureUnavailable(f"MQTT publish to {r.topic} failed: {paho.error_string(info.rc)}")
        self.sent += 1

    async def flush(self) -> None:
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise InfrastructureUnavailable(
                    f"{self.sent - self.acked} of {self.sent} messages not acknowledged by the broker"
                )
            await asyncio.sleep(0.01)


@dataclass(slots=True)
class PlayStats:
    sent: int = 0
    wall_s: float = 0.0
    by_source: Counter[tuple[str, str]] = field(default_factory=Counter)  # (device or topic, kind)

    def summary(self) -> str:
        """Messages per device and kind, for the end of a run."""
        per_device: dict[str, Counter[str]] = {}
        for (source, kind), n in self.by_source.items():
            per_device.setdefault(source, Counter())[kind] += n
        rate = self.sent / self.wall_s if self.wall_s > 0 else 0.0
        lines = [f"{self.sent} messages in {self.wall_s:.1f} s ({rate:,.0f}/s)"]
        width = max((len(d) for d in per_device), default=0)
        for source in sorted(per_device):
            kinds = per_device[source]
            detail = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
            lines.append(f"  {source:<{width}}  {sum(kinds.values()):>7}  ({detail})")
        return "\n".join(lines)


def source_of(topic: str) -> tuple[str, str]:
    """(device id, message kind) of a device topic; (topic, "other") of anything else."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "vigil":
        return parts[3], parts[4]
    return topic, "other"


async def play(
    records: Iterable[Recorded],
    url: str,
    *,
    speed: float = 1.0,
    total: int = 0,
    label: str = "replay",
    client_id: str = "",
) -> PlayStats:
    """Publish `records` (in time order) with their spacing divided by `speed` (inf: at once)."""
    if not speed > 0:
        raise VigilError(f"speed must be above 0, got {speed:g}")
    stats = PlayStats()
    loop = asyncio.get_running_loop()
    started = loop.time()
    first: float | None = None
    with Progress(total, label, unit="messages") as progress:
        async with Publisher(url, client_id) as publisher:
            for r in records:
                if first is None:
                    first = r.t_s
                if math.isfinite(speed):
                    wait = started + (r.t_s - first) / speed - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                await publisher.send(r)
                stats.sent += 1
                stats.by_source[source_of(r.topic)] += 1
                progress.advance()
    stats.wall_s = loop.time() - started
    return stats


async def replay_file(path: str | os.PathLike[str], url: str, *, speed: float = 1.0) -> PlayStats:
    _, records = read_recording(path)
    records.sort(key=lambda r: r.t_s)  # a hand-edited file may be out of order; sort is stable
    return await play(records, url, speed=speed, total=len(records), label=f"replay ×{speed:g}")


# --- recording ---------------------------------------------------------------------------------


async def _received(url: str, topic: str, qos: int) -> AsyncIterator[tuple[float, paho.MQTTMessage]]:
    """Messages on `topic` as (seconds since subscribed, message), until cancelled."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, paho.MQTTMessage]] = asyncio.Queue()
    subscribed: asyncio.Future[float] = loop.create_future()
    client = mqtt.mqtt_client(url, f"vigil-record-{os.getpid()}-{time.monotonic_ns()}")

    def settle(at: float) -> None:
        if not subscribed.done():  # a resubscription after a reconnect changes nothing
            subscribed.set_result(at)

    def on_subscribe(*_: Any) -> None:
        loop.call_soon_threadsafe(settle, time.monotonic())

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        at = time.monotonic()
        loop.call_soon_threadsafe(queue.put_nowait, (at, msg))

    client.on_connect = lambda c, *_: c.subscribe(topic, qos=qos)
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    await mqtt.connect(client, url)
    try:
        start = await asyncio.wait_for(subscribed, 10)
        while True:
            at, msg = await queue.get()
            yield max(0.0, at - start), msg
    finally:
        await asyncio.to_thread(mqtt.disconnect, client)


async def record(
    path: str | os.PathLike[str], url: str, *, topic: str = "vigil/v1/#", duration_s: float | None = None
) -> int:
    """Write what arrives on `topic` to `path` for `duration_s` (None: until SIGINT/SIGTERM);
    returns the number of messages. Lines are flushed as they come, so a crash keeps them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread: no signals
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    count = 0

    async def capture(f: Any, progress: Progress) -> None:
        nonlocal count
        async for at, msg in _received(url, topic, qos=1):
            r = Recorded(at, msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
            f.write(encode_line(r) + b"\n")
            f.flush()
            count += 1
            progress.advance()

    f = await asyncio.to_thread(Path(path).open, "wb")
    try:
        with Progress(0, f"recording {topic}", unit="messages") as progress:
            f.write(orjson.dumps(header(f"record {url.split('@')[-1]} {topic}", topic=topic)) + b"\n")
            task = asyncio.create_task(capture(f, progress))
            waits: list[asyncio.Future[Any]] = [task, asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        f.close()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return count
