"""Telemetry detectors as members of one consumer group on the real Kafka: a second worker joins
mid-stream and the first leaves mid-stream, and no reading is lost: every alert a single detector
would raise is in the alert store exactly once (the replayed duplicates a rebalance causes carry
the same deterministic ids, which the store absorbs). Speeds belong to `vigil bench scale`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg_pool import AsyncConnectionPool

from alerts.service import AlertService
from detectors.rules import Rulebook, RuleEngine
from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import Telemetry, encode
from vigil.kafka import make_producer, now_ms
from vigil.registry import Device, register_device
from vigil.settings import Settings
from vigil.topics import VIOLATIONS

pytestmark = pytest.mark.integration

DEVICES, READINGS, PHASES = 24, 30, 3  # readings per device, in three phases of ten
PARTITIONS = 6
# The embedded Kafka takes 5-18 s to form or re-form a group; a loaded machine adds to that.
JOIN_S = 90.0
ATTRIBUTES = {"duration_s": 0}  # an excursion is a violation at its first warm reading


def fleet(uid: str) -> list[Device]:
    return [
        Device(f"fz-{uid}-{i:02d}", f"ent-{uid}", f"site-{uid}", "freezer", ATTRIBUTES)
        for i in range(DEVICES)
    ]


def warm_from(i: int) -> int | None:
    """Even devices fail at a reading spread over all three phases; odd ones never do."""
    return None if i % 2 else 2 + (i * 5) % (READINGS - 3)


def messages(devices: list[Device], t0: int) -> list[list[Telemetry]]:
    """Per phase, every device's readings of that phase, a second apart in the device's time."""
    phases: list[list[Telemetry]] = [[] for _ in range(PHASES)]
    for k in range(READINGS):
        for i, d in enumerate(devices):
            start = warm_from(i)
            temperature = -8.0 if start is not None and k >= start else -21.0
            ts = t0 + k * 1000
            reading = Telemetry(
                d.enterprise_id, d.device_id, d.site_id, d.profile, ts, {"temperature": temperature}, ts
            )
            phases[k * PHASES // READINGS].append(reading)
    return phases


def expected_violations(devices: list[Device], phases: list[list[Telemetry]]) -> set[str]:
    """What one detector that saw every reading raises: the reference the group must match."""
    engine, registry = RuleEngine(Rulebook()), {d.device_id: d for d in devices}
    return {
        v.violation_id
        for phase in phases
        for m in phase
        for v in engine.feed(m, registry[m.device_id])
        if v.state == "active"
    }


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.1)


def owned(detector: TelemetryDetector) -> set[int]:
    consumer = detector._consumer
    return {tp.partition for tp in consumer.assignment()} if consumer is not None else set()


async def test_a_worker_joining_and_one_leaving_mid_stream_lose_no_reading(
    settings: Settings, pool: AsyncConnectionPool[Any], uid: str
) -> None:
    assert settings.kafka_bootstrap
    devices = fleet(uid)
    for d in devices:
        await register_device(
            pool, enterprise_id=d.enterprise_id, site_id=d.site_id, device_id=d.device_id,
            profile=d.profile, attributes=ATTRIBUTES,
        )  # fmt: skip
    phases = messages(devices, now_ms() - (READINGS + 5) * 1000)  # within the replay window
    expected = expected_violations(devices, phases)
    assert len(expected) == DEVICES // 2

    topic, group = f"test.scale.{uid}", f"test-scale-{uid}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()

    def worker() -> TelemetryDetector:
        detector = TelemetryDetector(settings)
        detector.topic, detector.group_id = topic, group
        return detector

    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()

    async def produce(phase: list[Telemetry]) -> None:
        for m in phase:
            await producer.send(topic, encode(m), key=m.device_id.encode())
        await producer.flush()

    first, second = worker(), worker()
    everything = set(range(PARTITIONS))
    try:
        async with AlertService(settings), KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations:
            await first.start()
            await until(lambda: owned(first) == everything, JOIN_S, "the first worker owns the topic")
            await produce(phases[0])
            await second.start()  # joins while the first phase is being judged
            await produce(phases[1])  # and the second is produced during the rebalance
            await until(
                lambda: (
                    bool(owned(first)) and bool(owned(second)) and owned(first) | owned(second) == everything
                ),
                JOIN_S,
                "the two workers share the partitions",
            )
            await first.stop()  # leaves mid-stream
            await produce(phases[2])
            await until(lambda: owned(second) == everything, JOIN_S, "the second worker owns the topic")
            mine = {d.device_id for d in devices}

            def matching(r: Any) -> bool:
                return r["source_id"] in mine and r["state"] == "active"

            raised = await violations.wait_for(matching, count=len(expected), timeout=60)
            deadline = time.monotonic() + 60
            while len({r["violation_id"] for r in raised}) < len(expected):
                # The rebalance's replay re-emits some violations (same ids): those count towards
                # `count`, so keep reading one record at a time until every distinct id is in.
                left = max(deadline - time.monotonic(), 0.1)
                raised = await violations.wait_for(matching, count=len(raised) + 1, timeout=left)

            async def stored() -> list[tuple[str, str, str]]:
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT alert_id, source_id, code FROM alerts WHERE enterprise_id = %s",
                        (f"ent-{uid}",),
                    )
                    return list(await cur.fetchall())

            deadline = time.monotonic() + 60
            while len(rows := await stored()) < len(expected) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # a late duplicate would show now
            rows = await stored()
    finally:
        await first.stop()
        await second.stop()
        await producer.stop()

    # Every violation one detector raises, none it does not; re-emitted ones carry the same id.
    assert {r["violation_id"] for r in raised} == expected
    # One alert per failing device, exactly once, with the id of its episode's violation.
    assert sorted(alert_id for alert_id, _, _ in rows) == sorted(expected)
    assert sorted(source for _, source, _ in rows) == sorted(
        d.device_id for i, d in enumerate(devices) if i % 2 == 0
    )
    # Every reading was judged, some twice: the replay that rebuilds rule state on assignment.
    assert first.stats.readings + second.stats.readings >= DEVICES * READINGS
