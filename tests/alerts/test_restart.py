"""Kill -9 the alerts service while violations flow, start it again: no alert lost, none duplicated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from aiokafka import AIOKafkaProducer

from tests.alerts.test_store import rows
from vigil.events import Violation, encode, violation_id
from vigil.topics import VIOLATIONS

SOURCES = 200
T0 = 1_763_000_000_000


def start_alerts_service(settings) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_DATABASE_URL": settings.database_url,
        "VIGIL_MQTT_URL": settings.mqtt_url,
    }
    return subprocess.Popen([sys.executable, "-m", "shell.cli", "run", "alerts"], env=env)


def violations(uid: str) -> list[Violation]:
    out = []
    for i in range(SOURCES):
        source = f"dev-{uid}-{i}"
        out.append(
            Violation(
                violation_id=violation_id("device", source, "COLD_CHAIN_FREEZER_WARM", T0),
                code="COLD_CHAIN_FREEZER_WARM", state="active", enterprise_id=f"ent-{uid}",
                site_id=f"site-{uid}", source_kind="device", source_id=source, window_start=T0,
                detected_at=T0 + 1000, severity="major", detector="test", summary="too warm",
            )
        )  # fmt: skip
    return out


async def stream(settings, items: list[Violation]) -> None:
    """Send every violation twice (a redelivering producer), five at a time, a burst every 50 ms."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(items), 5):
            for v in items[start : start + 5] * 2:
                await producer.send(VIOLATIONS, encode(v), key=v.source_id.encode())
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()


async def count(pool, uid: str) -> int:
    [(n,)] = await rows(pool, "SELECT count(*) FROM alerts WHERE enterprise_id=%s", f"ent-{uid}")
    return int(n)


async def test_kill_and_restart_loses_no_alert_and_duplicates_none(settings, pool, uid):
    items = violations(uid)
    first = start_alerts_service(settings)
    try:
        # The first few open once the service has joined its consumer group; then the stream flows
        # for about two seconds and the kill lands in the middle of it.
        await stream(settings, items[:5])
        for _ in range(600):
            if await count(pool, uid) >= 5:
                break
            await asyncio.sleep(0.1)
        sender = asyncio.create_task(stream(settings, items[5:]))
        for _ in range(600):
            if await count(pool, uid) >= 60:
                break
            await asyncio.sleep(0.02)
        killed_at = await count(pool, uid)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert 0 < killed_at < SOURCES, "the kill should land while violations are still flowing"
        await sender

        second = start_alerts_service(settings)
        try:
            for _ in range(900):
                if await count(pool, uid) >= SOURCES:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # give a duplicate, if any were coming, time to land
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, "a clean stop exits 0"
    finally:
        if first.poll() is None:
            first.kill()

    ent = f"ent-{uid}"
    assert await count(pool, uid) == SOURCES
    [(distinct_sources,)] = await rows(
        pool, "SELECT count(DISTINCT source_id) FROM alerts WHERE enterprise_id=%s", ent
    )
    assert distinct_sources == SOURCES
    [(notices,)] = await rows(
        pool, "SELECT count(*) FROM outbox WHERE enterprise_id=%s AND channel='mqtt_notice'", ent
    )
    assert notices == SOURCES, "exactly one notice per alert"
    [(max_occurrences,)] = await rows(pool, "SELECT max(occurrences) FROM alerts WHERE enterprise_id=%s", ent)
    assert max_occurrences == 1, "a redelivered violation is not a repeat"
