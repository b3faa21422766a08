"""A device whose profile the telemetry detector cannot load (a typo registered before profiles
were checked, or a profile since removed) is never silently unjudged: each of its readings goes to
the dead-letter topic saying why, with the known profiles; other devices are judged as before."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import Telemetry, encode
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.topics import DEADLETTER, TELEMETRY


async def test_readings_of_a_device_with_an_unknown_profile_are_dead_lettered(settings, pool, uid):
    device = f"typo-{uid}"
    # Written straight to the table, as an older release or a hand edit could have left it.
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=device, profile="freezr"
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead,
            TelemetryDetector(settings) as detector,
        ):
            now = now_ms()
            reading = Telemetry(
                f"ent-{uid}", device, f"site-{uid}", "freezr", now, {"temperature": 40.0}, now
            )
            await producer.send_and_wait(TELEMETRY, encode(reading), key=device.encode())
            [letter] = await dead.wait_for(
                lambda r: r["service"] == "detector-telemetry" and device in r["detail"], timeout=45
            )
    finally:
        await producer.stop()
    assert letter["reason"] == "unknown_profile"
    assert (
        "'freezr'" in letter["detail"]
        and "known profiles:" in letter["detail"]
        and "freezer" in letter["detail"]
    )
    assert detector.stats.dead_lettered >= 1
