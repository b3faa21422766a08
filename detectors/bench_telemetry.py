"""`vigil bench telemetry`: the telemetry path against the raw limits of its parts, in one run.

Rules alone (the engine fed and ticked as the detector does; then with decoding and the registry);
raw MQTT (a publisher process → broker → a plain paho subscriber); raw Kafka (a plain consumer,
then the real `TelemetryDetector`, over the same records of a fresh topic); MQTT → alert with
`vigil run alerts | detector-telemetry | ingest` as separate processes, as deployed: N readings
published as fast as the broker takes them, one device in ten out of its limits (`duration_s` 0:
raised at once), timed until every reading is judged and every violation applied (the groups'
committed offsets); then a real-time stream at half that rate for the latency from a reading's
publish (its `ts`, the violation's `detected_at`) to its alert row (`applied_at`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigil.errors import VigilError
from vigil.events import Telemetry, decode_device_message, encode
from vigil.kafka import make_producer, now_ms
from vigil.mqtt import mqtt_address, mqtt_client
from vigil.progress import Progress
from vigil.registry import Device
from vigil.settings import Settings
from vigil.topics import MQTT_DEVICE_SUBSCRIPTION, TELEMETRY, VIOLATIONS

TARGET_E2E, TARGET_RULES = 10_000.0, 50_000.0  # msg/s, the design's targets
RULES_SECONDS = 2.0  # in-process figures: repeated passes for at least this long
TICK_EVERY = 500  # the detector ticks its engine after each batch of (at most) this many
INFLIGHT = 1000  # the publisher's window of unacknowledged QoS 1 messages
BACKLOG = 50_000  # most messages published ahead of the receiver (the broker queues 100,000)
STALL_S = 60.0  # no progress for this long: the run is stuck (a lost message, a dead service)
SERVICES = ("alerts", "detector-telemetry", "ingest")  # downstream first
GROUPS = {TELEMETRY: ("vigil-detector-telemetry", 12), VIOLATIONS: ("vigil-alerts", 6)}
NORMAL, WARM = {"freezer": -20.0, "chiller": 4.0}, {"freezer": -5.0, "chiller": 12.0}
ATTRIBUTES = {"duration_s": 0}  # an excursion is a violation at once: the latency is the pipeline's


def make_devices(count: int, tag: str) -> list[Device]:
    """Freezers and chillers; every tenth (index % 10 == 0) is out of its limits."""
    return [Device(f"bench-{tag}-d{i:05d}", f"bench-{tag}-e{i // 50}", f"bench-{tag}-s{i // 50}",
                   "chiller" if i % 3 == 2 else "freezer", ATTRIBUTES) for i in range(count)]  # fmt: skip


def metrics(d: Device, j: int, i: int, warm: bool) -> dict[str, float]:
    """A cold-room sensor's reading: the profile's metrics and a sensor's housekeeping, ~150 bytes."""
    jitter = ((i * 7919 + j * 104729) % 200) / 100 - 1.0  # ±1, deterministic
    temperature = WARM[d.profile] if warm else NORMAL[d.profile] + jitter
    return {"temperature": round(temperature, 2), "humidity": round(80 + 5 * jitter, 1),
            "setpoint_c": NORMAL[d.profile], "compressor_a": round(3.2 + jitter / 4, 2),
            "battery_v": 3.61, "rssi_dbm": -60 - j % 20}  # fmt: skip


def warm_now(j: int, ts: int, cycling: bool) -> bool:
    """Devices out of limits stay warm through a throughput run; in the real-time stream they
    cycle, 3 s warm then 3 s normal, raising (and clearing) a violation every 6 s."""
    return j % 10 == 0 and (not cycling or (ts // 1000 + j) % 6 < 3)


def readings(devices: list[Device], n: int, *, in_range: bool = False) -> list[Telemetry]:
    """N readings, devices in turn, a second apart per device, the last ten seconds ago."""
    count, t0, out = len(devices), now_ms() - (n // len(devices) + 10) * 1000, []
    for i in range(n):
        j, d, ts = i % count, devices[i % count], t0 + i // count * 1000
        m = metrics(d, j, i, not in_range and warm_now(j, ts, False))
        out.append(Telemetry(d.enterprise_id, d.device_id, d.site_id, d.profile, ts, m, ts))
    return out


def measure_rules(devices: list[Device], n: int) -> tuple[float, float, float]:
    """(rules alone, decode + registry + rules, `detectors.rules.bench` on its mixed fleet), msg/s."""
    from detectors.rules import Rulebook, RuleEngine, bench

    decoded, registry, book = readings(devices, n), {d.device_id: d for d in devices}, Rulebook()
    raw, rates = [encode(t) for t in decoded], []
    for label in ("rules alone", "decode + rules"):
        done, start = 0, time.perf_counter()
        with Progress(0, label, unit="msgs") as progress:
            while time.perf_counter() - start < RULES_SECONDS:
                engine = RuleEngine(book)  # fresh state each pass: time must move forward
                feed, tick = engine.feed, engine.tick
                for k in range(n):
                    m = decoded[k] if label == "rules alone" else decode_device_message(raw[k])
                    feed(m, registry.get(m.device_id))
                    if k % TICK_EVERY == TICK_EVERY - 1:
                        tick(engine.watermark)
                done += n
                progress.advance(n)
        rates.append(done / (time.perf_counter() - start))
    return rates[0], rates[1], bench(max(n, 100_000), len(devices)).per_second


def publish(spec: dict[str, Any]) -> dict[str, float]:
    """In its own process (devices are not the services' CPU): readings `first`… as QoS 1, at most
    INFLIGHT unacknowledged, as fast as possible or at `rate`/s stamped with the time of sending.
    MQTT 3.1.1 written straight to the socket: a paho publisher would be the bottleneck."""
    devices, (first, n, rate, t0) = [Device(*d) for d in spec["devices"]], spec["range"]
    sock, client_id = socket.create_connection(mqtt_address(spec["url"])), uuid.uuid4().hex.encode()
    sock.sendall(_packet(0x10, b"\0\x04MQTT\x04\x02\0\0" + len(client_id).to_bytes(2) + client_id))
    if sock.recv(4) != b"\x20\x02\0\0":
        raise VigilError("the MQTT broker refused the publisher")
    acked, count = [0], len(devices)

    def read_acks() -> None:  # PUBACKs are 4 bytes each, and nothing else comes to a publisher
        received = 0
        while acked[0] < n and (chunk := sock.recv(65536)):
            received += len(chunk)
            acked[0] = received // 4

    (reader := threading.Thread(target=read_acks, daemon=True)).start()
    topics = [f"vigil/v1/{d.enterprise_id}/{d.device_id}/telemetry".encode() for d in devices]
    start, i = time.time(), 0
    while i < n:
        if rate and (delay := start + i / rate - time.time()) > 0:
            time.sleep(delay)
        if i - acked[0] >= INFLIGHT:
            time.sleep(0.0002)
            continue
        batch = []
        for k in range(first + i, first + min(n, acked[0] + INFLIGHT, i + 1 if rate else n)):
            j, ts = k % count, now_ms() if rate else t0 + k // count * 1000
            reading = {"ts": ts, "metrics": metrics(devices[j], j, k, warm_now(j, ts, bool(rate)))}
            head = len(topics[j]).to_bytes(2) + topics[j] + (k % 65535 + 1).to_bytes(2)
            batch.append(_packet(0x32, head + orjson.dumps(reading)))
        sock.sendall(b"".join(batch))
        i += len(batch)
    reader.join(STALL_S)
    end = time.time()
    sock.sendall(b"\xe0\0")  # DISCONNECT
    return {"start": start, "end": end, "acked": acked[0]}


def _packet(kind: int, body: bytes) -> bytes:
    size, length = len(body), bytearray()
    while True:  # MQTT's variable-length "remaining length"
        size, digit = size >> 7, size & 0x7F
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([kind]) + bytes(length) + body


async def run_publisher(
    url: str, devices: list[Device], n: int, received: Callable[[], int], rate: float = 0.0
) -> dict[str, float]:
    """Publish in chunks, each once the receiver is less than BACKLOG behind (the broker drops what
    its queue for a slow subscriber cannot hold). Returns the first publish and the last PUBACK."""
    t0, times = now_ms() - (n // len(devices) + 10) * 1000, []
    for first in range(0, n, BACKLOG):
        while first - received() > BACKLOG // 2:  # noqa: ASYNC110 (a counter another thread moves)
            await asyncio.sleep(0.02)
        chunk = (first, min(BACKLOG, n - first), rate, t0)
        spec = {"url": url, "devices": [astuple(d) for d in devices], "range": chunk}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate(orjson.dumps(spec))
        if proc.returncode != 0:
            raise VigilError(f"the publisher process failed with {proc.returncode}")
        times.append(orjson.loads(out))
    return {"start": times[0]["start"], "end": times[-1]["end"]}


async def measure_raw_mqtt(url: str, devices: list[Device], n: int) -> tuple[float, float]:
    """(pass-through msg/s: first publish to last receipt; publisher msg/s: to the last PUBACK)."""
    received, last, subscribed = [0], [0.0], threading.Event()

    def on_message(*_: Any) -> None:
        received[0] += 1
        last[0] = time.time()

    client = mqtt_client(url, f"bench-sub-{uuid.uuid4().hex[:8]}")
    client.on_message, client.on_subscribe = on_message, lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(MQTT_DEVICE_SUBSCRIPTION, qos=1)
    client.connect(*mqtt_address(url))
    client.loop_start()
    try:
        if not await asyncio.to_thread(subscribed.wait, 10):
            raise VigilError("the raw MQTT subscriber got no SUBACK")
        with Progress(n, "raw MQTT pass-through", unit="msgs") as progress:
            task = asyncio.ensure_future(run_publisher(url, devices, n, lambda: received[0]))
            while not task.done() or received[0] < n:
                await asyncio.sleep(0.05)
                progress.advance(received[0] - progress.done)
                if task.done() and time.time() - max(last[0], task.result()["end"]) > 5:
                    raise VigilError(f"raw MQTT: only {received[0]} of {n} messages arrived")
    finally:
        client.disconnect()
        client.loop_stop()
    start, end = task.result()["start"], task.result()["end"]
    return n / (last[0] - start), n / (end - start)


async def measure_kafka(s: Settings, devices: list[Device], n: int, tag: str) -> tuple[float, float]:
    """(raw consume msg/s, TelemetryDetector msg/s) over the same N records of a fresh 12-partition
    topic, all within limits; both timed from their first batch (connecting is not consuming)."""
    from detectors.telemetry import TelemetryDetector

    assert s.kafka_bootstrap
    topic, admin = f"bench.telemetry.{tag}", AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 12, 1)])
    await admin.close()
    producer = make_producer(s.kafka_bootstrap)
    await producer.start()
    for t in readings(devices, n, in_range=True):
        await producer.send(topic, encode(t), key=t.device_id.encode())
    await producer.stop()  # flushes
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka_bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=1 << 20)  # fmt: skip
    await consumer.start()
    detector = TelemetryDetector(s)
    detector.topic, detector.group_id = topic, f"bench-detector-{tag}"  # the bench's copy, own group
    rates: list[float] = []
    for label in ("raw aiokafka consume", "detector (Kafka → rules)"):
        first, t_first = 0, 0.0
        with Progress(n, label, unit="msgs") as progress:
            while progress.done < n:
                if rates:  # the detector's turn
                    await detector.start()  # once
                    await asyncio.sleep(0.005)
                    progress.advance(detector.stats.readings - progress.done)
                else:
                    batch = await consumer.getmany(timeout_ms=200, max_records=500)
                    progress.advance(sum(map(len, batch.values())))
                if progress.done and not t_first:
                    first, t_first = progress.done, time.perf_counter()
        rates.append((n - first) / (time.perf_counter() - t_first))
    await consumer.stop()
    await detector.stop()
    return rates[0], rates[1]


@dataclass
class Pipeline:
    """The services as `vigil run` processes, and how far each has got, seen from outside: records
    on the topics (a tail reader, since the embedded Kafka's ListOffsets is not usable) and the
    offsets the detector and alerts groups committed."""

    s: Settings
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    consumers: dict[str | None, AIOKafkaConsumer] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    ingested: int = 0  # records on the telemetry topic since the phase being followed began

    def start(self, tag: str) -> None:
        from vigil.infra import _die_with_parent

        urls = {"KAFKA_BOOTSTRAP": self.s.kafka_bootstrap, "MQTT_URL": self.s.mqtt_url,
                "DATABASE_URL": self.s.database_url, "INGEST_CLIENT_ID": f"bench-{tag}"}  # fmt: skip
        env = {**os.environ, **{f"VIGIL_{k}": v or "" for k, v in urls.items()}}
        for name in SERVICES:
            with (self.workdir / f"{name}.log").open("wb") as log:
                argv = [sys.executable, "-m", "vigil.cli", "run", name]
                self.procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    preexec_fn=_die_with_parent, process_group=0)  # fmt: skip

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise VigilError(f"`vigil run {name}` exited with {proc.returncode}:\n{log}")

    async def offsets(self, topic: str, committed: bool = False) -> int:
        group, partitions = GROUPS[topic] if committed else (None, GROUPS[topic][1])
        if group not in self.consumers:  # a group's client that never subscribes reads, never joins
            self.consumers[group] = c = AIOKafkaConsumer(
                bootstrap_servers=self.s.kafka_bootstrap, group_id=group, fetch_max_wait_ms=50
            )
            await c.start()
            if group is None:
                c.assign([TopicPartition(t, p) for t, (_, ps) in GROUPS.items() for p in range(ps)])
                await c.seek_to_beginning()
        consumer, tps = self.consumers[group], [TopicPartition(topic, p) for p in range(partitions)]
        if committed:
            return sum([await consumer.committed(tp) or 0 for tp in tps])
        while batch := await consumer.getmany(timeout_ms=0):
            self.ends.update({tp: records[-1].offset + 1 for tp, records in batch.items()})
        return sum(self.ends.get(tp, 0) for tp in tps)

    async def follow(self, n: int, publisher: asyncio.Future[Any], label: str) -> tuple[float, float]:
        """Until the publisher is done, ingest has put `n` more records on the topic, the detector
        judged them all and alerts applied every violation, twice in a row (the tail may lag a
        fetch). Returns the wall-clock times ingest got there and everything did."""
        base, t_ingest, t_done, moved_at = await self.offsets(TELEMETRY), 0.0, 0.0, time.monotonic()
        last: tuple[int, ...] = ()
        with Progress(n, label, unit="msgs") as bar:
            while True:
                await asyncio.sleep(0.1)
                self.check()
                end, judged = await self.offsets(TELEMETRY), await self.offsets(TELEMETRY, True)
                v_end, applied = await self.offsets(VIOLATIONS), await self.offsets(VIOLATIONS, True)
                self.ingested, now = end - base, (end, judged, v_end, applied)
                t_ingest = t_ingest or (time.time() if end - base >= n else 0.0)
                bar.advance(min(n, max(judged - base, 0)) - bar.done)
                if publisher.done() and t_ingest and judged >= end and applied >= v_end:
                    if t_done:
                        return t_ingest, t_done
                    t_done = time.time()
                else:
                    t_done = 0.0
                if now != last:
                    moved_at, last = time.monotonic(), now
                elif time.monotonic() - moved_at > STALL_S:
                    raise VigilError(f"{label}: stuck, {end - base}/{n} on Kafka, {judged - base} judged, "
                                     f"{v_end - applied} violations not applied; see the logs")  # fmt: skip

    async def close(self) -> None:
        for proc in reversed(self.procs.values()):  # upstream first
            proc.terminate()
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for consumer in self.consumers.values():
            await consumer.stop()


@dataclass(frozen=True, slots=True)
class E2E:
    rate: float
    ingest_rate: float
    alerts: int
    busy: float  # the machine's busy cores while MQTT → alert ran (every process, ours or not)
    latency_rate: float
    latency_ms: list[float]


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy, all cores (not idle, not waiting on I/O)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


async def measure_e2e(s: Settings, fleet: list[Device], n: int, latency_s: float, workdir: Path) -> E2E:
    from vigil.db import make_pool

    assert s.database_url and s.mqtt_url
    url, tag, pipeline = s.mqtt_url, fleet[0].device_id.split("-")[1], Pipeline(s, workdir)
    probe = Device(f"bench-{tag}-probe", fleet[0].enterprise_id, fleet[0].site_id, "freezer", {})
    pipeline.start(tag)
    try:
        async with make_pool(s.database_url, max_size=2, name="bench-telemetry") as pool:

            async def query(sql: str, *args: object) -> list[Any]:
                async with pool.connection() as conn:
                    return await (await conn.execute(sql, args)).fetchall()

            for _ in range(120):  # until a probe's warm reading is an alert: every service is up
                pipeline.check()
                await run_publisher(url, [probe], 1, lambda: 0)
                if await query("SELECT 1 FROM alerts WHERE source_id = %s", probe.device_id):
                    break
                await asyncio.sleep(0.5)
            await pipeline.follow(0, asyncio.ensure_future(asyncio.sleep(0)), "services ready")
            busy, ingested = (busy_seconds(), time.time()), lambda: pipeline.ingested
            publisher = asyncio.ensure_future(run_publisher(url, fleet, n, ingested))
            t_ingest, t_done = await pipeline.follow(n, publisher, "MQTT → alert")
            start = publisher.result()["start"]
            cores = (busy_seconds() - busy[0]) / (time.time() - busy[1])
            [(alerts,)] = await query(
                "SELECT count(*) FROM alerts WHERE source_id LIKE %s", f"bench-{tag}-d%"
            )
            # Latency: a real-time stream at half the measured capacity, readings stamped as sent.
            since, rate = now_ms(), n / (t_done - start) / 2
            count = max(int(rate * latency_s), len(fleet))
            publisher = asyncio.ensure_future(run_publisher(url, fleet, count, ingested, rate))
            await pipeline.follow(count, publisher, "latency (real-time stream)")
            rows = await query(
                "SELECT extract(epoch FROM av.applied_at - av.detected_at) * 1000 FROM alert_violations av"
                " JOIN alerts a USING (alert_id) WHERE av.state = 'active' AND a.source_id LIKE %s"
                " AND av.detected_at >= to_timestamp(%s / 1000.0)", f"bench-{tag}-d%", since,
            )  # fmt: skip
        latency = sorted(float(r[0]) for r in rows)
        return E2E(n / (t_done - start), n / (t_ingest - start), alerts, cores, rate, latency)
    finally:
        await pipeline.close()


@dataclass(frozen=True, slots=True)
class Figure:
    rate: float  # msg/s
    limit: float | None = None  # the raw limit it is compared with, measured in the same run
    limit_name: str = ""
    target: float | None = None  # the design's target, msg/s

    @property
    def ratio(self) -> float | None:
        return self.rate / self.limit if self.limit else None


@dataclass(frozen=True, slots=True)
class TelemetryReport:
    figures: dict[str, Figure]
    e2e: E2E
    expected_alerts: int
    header: str

    def latency(self, q: float) -> float:
        ordered = self.e2e.latency_ms
        return ordered[round(q / 100 * (len(ordered) - 1))] if ordered else float("nan")


async def measure(settings: Settings, *, messages: int, devices: int, latency_s: float) -> TelemetryReport:
    from vigil.db import make_pool, migrate
    from vigil.infra import Infrastructure
    from vigil.kafka import ensure_topics
    from vigil.registry import register_device

    tag = uuid.uuid4().hex[:6]
    fleet = make_devices(max(2, min(devices, messages // 2)), tag)  # each device reads twice at least
    rules, decode_rules, mixed = await asyncio.to_thread(measure_rules, fleet, messages)
    infra = Infrastructure(settings.model_copy(update={"mode": "demo"}))
    s = await asyncio.to_thread(infra.start)
    try:
        assert s.database_url and s.kafka_bootstrap and s.mqtt_url
        await migrate(s.database_url)
        await ensure_topics(s.kafka_bootstrap)
        async with make_pool(s.database_url, name="bench-register") as pool:
            probe = Device(f"bench-{tag}-probe", fleet[0].enterprise_id, fleet[0].site_id, "freezer", {})
            for d in [*fleet, probe]:
                ids = {"enterprise_id": d.enterprise_id, "site_id": d.site_id, "device_id": d.device_id}
                await register_device(pool, **ids, profile=d.profile, attributes=ATTRIBUTES)
        raw_mqtt, publish_rate = await measure_raw_mqtt(s.mqtt_url, fleet, messages)
        raw_consume, detector = await measure_kafka(s, fleet, messages, tag)
        e2e = await measure_e2e(s, fleet, messages, latency_s, infra.workdir)
        mqtt = "mosquitto" if (infra.workdir / "mosquitto.conf").exists() else "amqtt"
    finally:
        await asyncio.to_thread(infra.stop)
    kinds = {"mqtt": f"MQTT {mqtt}", "kafka": "Kafka Tansu (in memory)", "postgres": "PostgreSQL embedded"}
    brokers = ", ".join(v if k in infra.embedded else f"{v.split()[0]} configured" for k, v in kinds.items())
    cpuinfo = await asyncio.to_thread(Path("/proc/cpuinfo").read_text)
    cpu = next((ln.split(":")[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
    header = (f"vigil bench telemetry — {messages:,} readings per stage from {len(fleet)} devices "
              f"({len(fleet[::10])} out of limits); rules: detectors.rules.RuleEngine\n  {cpu}, "
              f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), Python "
              f"{platform.python_version()}; {brokers}; services as separate processes")  # fmt: skip
    figures = {
        "raw MQTT pass-through (publisher → broker → paho)": Figure(raw_mqtt),
        "  the publisher alone (to its last PUBACK)": Figure(publish_rate),
        "raw aiokafka consume (no processing)": Figure(raw_consume),
        "rules alone (engine, this fleet)": Figure(rules, target=TARGET_RULES),
        "rules alone (detectors.rules.bench, mixed fleet)": Figure(mixed, target=TARGET_RULES),
        "decode + registry + rules": Figure(decode_rules, rules, "rules alone"),
        "detector service (Kafka → rules → commit)": Figure(detector, raw_consume, "raw consume"),
        "ingest (MQTT → Kafka), in the e2e run": Figure(e2e.ingest_rate, raw_mqtt, "raw MQTT"),
        "MQTT → alert, end to end": Figure(e2e.rate, raw_mqtt, "raw MQTT", TARGET_E2E),
    }
    return TelemetryReport(figures, e2e, len(fleet[::10]), header)


def print_report(r: TelemetryReport) -> None:
    width, e = max(map(len, r.figures)), r.e2e
    print(f"\n{r.header}\n  {'figure':<{width}}  {'msg/s':>9}  {'raw limit, same run':>24}  ratio   target")
    for name, f in r.figures.items():
        limit, ratio = (f"{f.limit_name} {f.limit:,.0f}", f"{f.ratio:.1%}") if f.limit else ("", "")
        verdict = (
            f"{'PASS' if f.rate >= f.target else 'BELOW'} ({f.rate / f.target:.2f}×)" if f.target else ""
        )
        target = f"≥ {f.target:,.0f}  {verdict}" if f.target else ""
        print(f"  {name:<{width}}  {f.rate:>9,.0f}  {limit:>24}  {ratio:>6}  {target}")
    print(f"  publish → alert row: p50 {r.latency(50):,.0f} ms, p95 {r.latency(95):,.0f} ms over "
          f"{len(e.latency_ms)} violations, streaming {e.latency_rate:,.0f} msg/s (e2e / 2)")  # fmt: skip
    print(f"  alerts opened by the e2e run: {e.alerts} of {r.expected_alerts} expected"
          f"{'' if e.alerts == r.expected_alerts else '  MISMATCH'}; machine busy during it: "
          f"{e.busy:.2f} of {os.cpu_count()} cores (brokers, services, publisher, all else)")  # fmt: skip
    verdicts = [f"{name} {f.rate:,.0f} msg/s: {'PASS' if f.rate >= f.target else 'BELOW'} (target "
                f"{f.target:,.0f})" for name, f in r.figures.items() if f.target]  # fmt: skip
    print("summary — " + "; ".join(verdicts))


async def run_telemetry_bench(settings: Settings, args: argparse.Namespace) -> int:
    report = await measure(settings, messages=args.messages, devices=args.devices, latency_s=args.latency_s)
    print_report(report)
    return 0


if __name__ == "__main__":  # the publisher process: a JSON spec on stdin, its timings on stdout
    sys.stdout.buffer.write(orjson.dumps(publish(orjson.loads(sys.stdin.buffer.read()))))
