"""Late readings (issue 16.6): a reading stamped earlier than its device's newest is stored by the
telemetry store like any other, counted by the telemetry detector (its stats and the
vigil_telemetry_late_messages metric) and not judged by the rules. Real Kafka, real PostgreSQL,
both real services reading the same topic."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from detectors.telemetry import TelemetryDetector
from ingest.storage import TelemetryStore
from vigil.events import DeviceEvent, Telemetry, encode
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.topics import TELEMETRY


def late(kind: str) -> float:
    return REGISTRY.get_sample_value("vigil_telemetry_late_messages_total", {"kind": kind}) or 0.0


async def test_a_late_reading_is_stored_counted_and_not_judged(settings, pool: Any, uid: str):
    device, ent, site = f"freezer-{uid}", f"ent-{uid}", f"site-{uid}"
    await register_device(pool, enterprise_id=ent, site_id=site, device_id=device, profile="freezer")
    t0 = now_ms() - 120_000
    messages = [
        Telemetry(ent, device, site, "freezer", t0 + 60_000, {"temperature": -20.0}, t0 + 60_000),
        Telemetry(ent, device, site, "freezer", t0 + 30_000, {"temperature": -19.5}, t0 + 61_000),  # late
        DeviceEvent(ent, device, site, "freezer", t0 + 40_000, "door_open", {}, t0 + 62_000),  # late too
    ]
    before = {kind: late(kind) for kind in ("telemetry", "event")}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with TelemetryDetector(settings) as detector, TelemetryStore(settings):
            # The detector also replays what earlier tests sent (its rules rebuild their windows
            # from the recent past on every assignment): this device's late messages are counted
            # apart from theirs by watching what it counts.
            counted: list[object] = []
            count_late = detector._count_late
            detector._count_late = lambda m: (counted.append(m), count_late(m))[1]  # type: ignore[method-assign]
            for message in messages:
                await producer.send_and_wait(TELEMETRY, encode(message), key=device.encode())
            for _ in range(200):
                async with pool.connection() as conn:
                    stored = await (
                        await conn.execute(
                            "SELECT (extract(epoch FROM ts) * 1000)::bigint, value FROM telemetry"
                            " WHERE device_id = %s ORDER BY ts",
                            (device,),
                        )
                    ).fetchall()
                mine = [m for m in counted if getattr(m, "device_id", None) == device]
                if len(stored) == 2 and len(mine) >= 2:
                    break
                await asyncio.sleep(0.2)
    finally:
        await producer.stop()
    assert stored == [(t0 + 30_000, -19.5), (t0 + 60_000, -20.0)]  # the late one is on record
    assert sorted(type(m).__name__ for m in mine) == ["DeviceEvent", "Telemetry"]
    assert all(late(kind) - n >= 1 for kind, n in before.items())  # and on the metrics
