"""The telemetry detector as a consumer-group member on the real Kafka, with the real registry."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import DeviceEvent, DeviceStatus, Telemetry, encode
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.topics import DEADLETTER, TELEMETRY, VIOLATIONS

T0 = 1_763_000_000_000


async def test_readings_become_violations_and_garbage_is_dead_lettered(settings, pool, uid):
    device = f"chiller-{uid}"
    readings = [(0, 4.0), (60, 6.0), (120, 6.5), (180, 7.0), (240, 3.0)]
    received = now_ms()  # as ingest stamps them; the rules run on the device's own `ts`
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
            garbage = b'{"v": 1, "type": "telemetry"}'
            bad = await producer.send_and_wait(TELEMETRY, garbage, key=device.encode())
            for seconds, temp in readings:
                t = Telemetry(
                    f"ent-{uid}",
                    device,
                    f"site-{uid}",
                    "chiller",
                    T0 + seconds * 1000,
                    {"temperature": temp},
                    received,
                )
                await producer.send_and_wait(TELEMETRY, encode(t), key=device.encode())
            raised, cleared = await violations.wait_for(
                lambda r: r["source_id"] == device, count=2, timeout=45
            )
            [letter] = await dead.wait_for(
                # This record's letter, by its place on the topic (the detector may also replay
                # garbage earlier tests sent, within the window it rebuilds its rules from).
                lambda r: (
                    r["service"] == "detector-telemetry"
                    and r["source"] == f"{TELEMETRY}/{bad.partition}@{bad.offset}"
                )
            )
    finally:
        await producer.stop()
    assert raised["state"] == "active" and raised["code"] == "COLD_CHAIN_CHILLER_OUT_OF_RANGE"
    assert raised["window_start"] == T0 + 60_000 and raised["detected_at"] == T0 + 180_000
    assert raised["evidence"]["limits"]["max_temp_c"] == 5 and raised["detector"] == "rules:chiller"
    assert cleared["state"] == "cleared" and cleared["violation_id"] == raised["violation_id"]
    assert letter["reason"] == "bad_field"
    assert detector.stats.readings >= len(readings)


async def test_events_statuses_and_silence_become_violations(settings, pool, uid):
    """A door left open (found by the next reading), an offline status and its end, a safety valve
    lift, and a device gone silent in a quiet partition (found by the wall-clock tick)."""
    ent, site, freezer, vessel = f"ent-{uid}", f"site-{uid}", f"freezer-{uid}", f"vessel-{uid}"
    for device, profile, attributes in (
        (freezer, "freezer", {"door_open_s": 30}),
        (vessel, "pressure_vessel", {"heartbeat_s": 5}),
    ):
        await register_device(
            pool, enterprise_id=ent, site_id=site, device_id=device, profile=profile, attributes=attributes
        )
    start, now = now_ms() - 120_000, now_ms()
    messages = [
        DeviceEvent(ent, freezer, site, "freezer", start, "door_open", {}, start),
        Telemetry(ent, freezer, site, "freezer", start + 60_000, {"temperature": -20.0}, start + 60_000),
        DeviceEvent(ent, freezer, site, "freezer", start + 61_000, "door_closed", {}, start + 61_000),
        DeviceStatus(ent, freezer, site, "freezer", start + 62_000, False, start + 62_000),
        DeviceStatus(ent, freezer, site, "freezer", start + 63_000, True, start + 63_000),
        DeviceEvent(ent, vessel, site, "pressure_vessel", now, "safety_valve_lift", {}, now),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            TelemetryDetector(settings) as detector,
        ):
            for message in messages:
                await producer.send_and_wait(TELEMETRY, encode(message), key=message.device_id.encode())
            seen = await violations.wait_for(lambda r: r["source_id"] == freezer, count=4, timeout=45)
            [lift] = await violations.wait_for(lambda r: r["source_id"] == vessel)
            # The vessel's partition is quiet and read to its end: the wall clock moves it on
            # (called here at a clock 30 s ahead, instead of waiting for the once-a-second tick).
            assert await detector.tick_quiet_partitions(now=now_ms() + 30_000) >= 1
            [offline] = await violations.wait_for(
                lambda r: r["source_id"] == vessel and r["code"] == "DEVICE_OFFLINE"
            )
    finally:
        await producer.stop()
    assert [(r["code"], r["state"]) for r in seen] == [
        ("COLD_CHAIN_DOOR_LEFT_OPEN", "active"),
        ("COLD_CHAIN_DOOR_LEFT_OPEN", "cleared"),
        ("DEVICE_OFFLINE", "active"),
        ("DEVICE_OFFLINE", "cleared"),
    ]
    assert seen[0]["window_start"] == start and seen[0]["detected_at"] == start + 30_000
    assert seen[2]["window_start"] == start + 62_000
    assert (lift["code"], lift["state"]) == ("PRESSURE_VESSEL_SAFETY_VALVE_LIFT", "active")
    assert offline["state"] == "active" and offline["window_start"] == now + 5_000
    assert detector.stats.events >= 3 and detector.stats.statuses >= 2
