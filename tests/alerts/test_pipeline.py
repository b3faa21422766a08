"""Violations on the real Kafka become alerts in the real PostgreSQL, notices on the real MQTT broker
and changes on `vigil.alerts.v1`; bad violations reach the dead-letter topic."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaProducer

from alerts.notifier import Notifier
from alerts.service import AlertService
from tests.alerts.test_store import rows, violation
from tests.helpers import KafkaTail, MqttTail
from vigil.events import encode
from vigil.topics import ALERTS, DEADLETTER, VIOLATIONS, notices_topic


async def wait_until(check, timeout: float = 30.0):
    for _ in range(int(timeout / 0.2)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout}s")


async def test_violation_to_alert_notice_and_change(settings, pool, uid):
    v = violation(uid)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with (
            AlertService(settings) as alerts,
            Notifier(settings),
            MqttTail(settings.mqtt_url, notices_topic(v.enterprise_id)) as notices,
            KafkaTail(settings.kafka_bootstrap, ALERTS) as changes,
            KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead,
        ):
            sent_ms = time.time() * 1000
            await producer.send_and_wait(VIOLATIONS, encode(v), key=v.source_id.encode())
            await producer.send_and_wait(VIOLATIONS, encode(v), key=v.source_id.encode())  # a redelivery
            bad = orjson.loads(encode(v)) | {"code": "NOT_A_CODE", "violation_id": f"bad-{uid}"}
            await producer.send_and_wait(VIOLATIONS, orjson.dumps(bad), key=v.source_id.encode())

            topic, payload = await notices.next(timeout=45)
            notice = orjson.loads(payload)
            assert topic == notices_topic(v.enterprise_id)
            assert notice["alert_id"] == v.violation_id and notice["code"] == "COLD_CHAIN_FREEZER_WARM"
            # Four hours from the notice, not from the (year-old) detection: a late violation
            # still leaves the enterprise its whole rectification time.
            assert notice["tier"] == 2
            assert (
                sent_ms + 4 * 3_600_000 - 1000 <= notice["rectify_by"] <= time.time() * 1000 + 4 * 3_600_000
            )

            mine = await changes.wait_for(lambda r: r["alert_id"] == v.violation_id, count=2)
            assert [r["change"] for r in mine] == ["opened", "notified"]
            [letter] = await dead.wait_for(lambda r: f"bad-{uid}" in r["payload"])
            assert letter["service"] == "alerts" and letter["reason"] == "unknown_code"

            async def notified():
                return await rows(pool, "SELECT status FROM alerts WHERE alert_id=%s", v.violation_id)

            assert await wait_until(notified) == [("notified",)]
            assert alerts.stats.replayed >= 1
    finally:
        await producer.stop()
    assert await rows(pool, "SELECT count(*) FROM alerts WHERE enterprise_id=%s", v.enterprise_id) == [(1,)]
    assert await rows(
        pool, "SELECT count(*) FROM outbox WHERE alert_id=%s AND delivered_at IS NULL", v.violation_id
    ) == [(0,)]
    assert notices.messages.empty()  # the redelivered violation sent no second notice
