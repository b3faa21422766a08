"""`vigil bench telemetry`'s measurements, each a stage of the telemetry path or the raw limit it
is compared with: the rule engine alone and behind decoding; raw MQTT pass-through; a raw Kafka
consumer and the real `TelemetryDetector` over the same records; and MQTT → alert end to end with
the services as separate processes (`Pipeline`), then the latency of a real-time stream."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.telemetry_fleet import STALL_S, readings, run_publisher
from vigil.errors import VigilError
from vigil.events import decode_device_message, encode
from vigil.kafka import make_producer, now_ms
from vigil.mqtt import mqtt_address, mqtt_client
from vigil.progress import Progress
from vigil.registry import Device
from vigil.settings import Settings
from vigil.topics import MQTT_DEVICE_SUBSCRIPTION, TELEMETRY, VIOLATIONS

RULES_SECONDS = 2.0  # in-process figures: repeated passes for at least this long
TICK_EVERY = 500  # the detector ticks its engine after each batch of (at most) this many
SERVICES = ("alerts", "detector-telemetry", "ingest")  # downstream first
GROUPS = {TELEMETRY: ("vigil-detector-telemetry", 12), VIOLATIONS: ("vigil-alerts", 6)}


def measure_rules(devices: list[Device], n: int) -> tuple[float, float, float]:
    """(rules alone, decode + registry + rules, `benchmarks.rules` on its mixed fleet), msg/s."""
    from benchmarks.rules import bench
    from detectors.rules import Rulebook, RuleEngine

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
        from shell.infra import die_with_parent

        urls = {"KAFKA_BOOTSTRAP": self.s.kafka_bootstrap, "MQTT_URL": self.s.mqtt_url,
                "DATABASE_URL": self.s.database_url, "INGEST_CLIENT_ID": f"bench-{tag}"}  # fmt: skip
        env = {**os.environ, **{f"VIGIL_{k}": v or "" for k, v in urls.items()}}
        for name in SERVICES:
            with (self.workdir / f"{name}.log").open("wb") as log:
                argv = [sys.executable, "-m", "shell.cli", "run", name]
                self.procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    preexec_fn=die_with_parent, process_group=0)  # fmt: skip

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
