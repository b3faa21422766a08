"""The telemetry detector as a consumer-group member on the real Kafka, with the real registry."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import Telemetry, encode
from vigil.registry import register_device
from vigil.topics import DEADLETTER, TELEMETRY, VIOLATIONS

T0 = 1_763_000_000_000


async def test_readings_become_violations_and_garbage_is_dead_lettered(settings, pool, uid):
    device = f"chiller-{uid}"
    readings = [(0, 4.0), (60, 6.0), (120, 6.5), (180, 7.0), (240, 3.0)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead,
            TelemetryDetector(settings) as detector,
        ):
            # Registered after the detector started: its own attributes (a tighter range, a shorter
            # duration) must still apply to its first readings.
            await register_device(
                pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=device, profile="chiller",
                attributes={"max_temp_c": 5, "duration_s": 120},
            )  # fmt: skip
            await producer.send_and_wait(TELEMETRY, b'{"v": 1, "type": "telemetry"}', key=device.encode())
            for seconds, temp in readings:
                t = Telemetry(
                    f"ent-{uid}",
                    device,
                    f"site-{uid}",
                    "chiller",
                    T0 + seconds * 1000,
                    {"temperature": temp},
                    T0,
                )
                await producer.send_and_wait(TELEMETRY, encode(t), key=device.encode())
            raised, cleared = await violations.wait_for(
                lambda r: r["source_id"] == device, count=2, timeout=45
            )
            [letter] = await dead.wait_for(
                lambda r: r["service"] == "detector-telemetry" and device not in r["payload"]
            )
    finally:
        await producer.stop()
    assert raised["state"] == "active" and raised["code"] == "COLD_CHAIN_CHILLER_OUT_OF_RANGE"
    assert raised["window_start"] == T0 + 60_000 and raised["detected_at"] == T0 + 180_000
    assert raised["evidence"]["max_c"] == 5
    assert cleared["state"] == "cleared" and cleared["violation_id"] == raised["violation_id"]
    assert letter["reason"] == "bad_field"
    assert detector.stats.readings >= len(readings)
