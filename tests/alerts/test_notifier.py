"""The notifier while the MQTT broker is down: the failure is recorded on the row, alert changes on
Kafka still flow, and once the broker is back the notice arrives exactly once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import orjson

from alerts.notifier import Notifier
from shell.infra import free_port, start_mqtt
from tests.alerts.test_pipeline import wait_until
from tests.alerts.test_store import apply, rows, violation
from tests.helpers import KafkaTail, MqttTail
from vigil.topics import ALERTS, notices_topic


async def test_broker_outage_delays_the_notice_but_neither_loses_nor_repeats_it(settings, pool, uid):
    v = violation(uid)
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        broker, url = start_mqtt(Path(workdir), port)
        s = settings.model_copy(update={"mqtt_url": url, "outbox_poll_interval_s": 0.2})
        try:
            async with (
                Notifier(s),
                MqttTail(url, notices_topic(v.enterprise_id)) as notices,
                KafkaTail(s.kafka_bootstrap, ALERTS) as changes,
            ):
                broker.stop()
                # Notices that earlier tests queued without a notifier would be claimed first (oldest
                # first, one failure per pass): put them off, so this notice is the one that fails.
                async with pool.connection() as conn:
                    await conn.execute(
                        "UPDATE outbox SET next_attempt_at = now() + interval '1 day'"
                        " WHERE delivered_at IS NULL AND dead_at IS NULL AND channel = 'mqtt_notice'"
                    )
                await apply(pool, v)

                async def failure_recorded():
                    return await rows(
                        pool,
                        "SELECT attempts, last_error FROM outbox WHERE alert_id=%s AND channel='mqtt_notice'"
                        " AND last_error IS NOT NULL",
                        v.violation_id,
                    )

                [(attempts, error)] = await wait_until(failure_recorded, timeout=20)
                assert attempts >= 1 and "not connected" in error
                # Kafka is up: the alert change is not held back by the MQTT outage.
                [opened] = await changes.wait_for(lambda r: r["alert_id"] == v.violation_id)
                assert opened["change"] == "opened" and opened["status"] == "open"

                broker, _ = start_mqtt(Path(workdir), port)
                _, raw = await notices.next(timeout=60)
                assert orjson.loads(raw)["alert_id"] == v.violation_id
                await asyncio.sleep(2)
                assert notices.messages.empty(), "the notice was delivered more than once"
                [notified] = await changes.wait_for(
                    lambda r: r["alert_id"] == v.violation_id and r["change"] == "notified"
                )
                assert notified["status"] == "notified"
        finally:
            broker.stop()
    [(delivered,)] = await rows(
        pool,
        "SELECT delivered_at IS NOT NULL FROM outbox WHERE alert_id=%s AND channel='mqtt_notice'",
        v.violation_id,
    )
    assert delivered
