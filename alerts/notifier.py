"""The notifier: delivers the outbox — enterprise notices on MQTT `vigil/v1/{enterprise}/notices`
(QoS 1) and alert changes on `vigil.alerts.v1` — then marks each row delivered.

Woken by NOTIFY from the alerts service, with a poll as the fallback. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several notifiers share the outbox. Delivery is at-least-once: a
crash after a publish but before the commit re-sends it; notices carry a stable `notice_id` so a
receiver can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaProducer
from paho.mqtt.client import Client as MqttClient
from psycopg.types.json import Jsonb

from alerts.store import OUTBOX_CHANNEL
from vigil import mqtt
from vigil.db import make_pool
from vigil.errors import InfrastructureUnavailable
from vigil.events import AlertChange, encode
from vigil.kafka import ensure_topics, make_producer, now_ms
from vigil.service import Service
from vigil.settings import Settings
from vigil.topics import ALERTS, notices_topic

log = logging.getLogger(__name__)

# Rows per claim: big enough to drain a burst quickly, small enough that a stuck broker holds
# few row locks while the publish times out.
_BATCH = 100
_BACKOFF_MAX_S = 30.0

_CLAIM = """
SELECT o.outbox_id, o.alert_id, o.enterprise_id, o.channel, o.payload,
       a.code, a.site_id, a.status, a.severity, a.tier, a.summary
FROM outbox o JOIN alerts a USING (alert_id)
WHERE o.delivered_at IS NULL
ORDER BY o.outbox_id
LIMIT %s
FOR UPDATE OF o SKIP LOCKED
"""


@dataclass(slots=True)
class NotifierStats:
    notices: int = 0
    changes: int = 0
    failures: int = 0


class Notifier(Service):
    name = "notifier"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url and settings.mqtt_url
        self._settings = settings
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self._producer: AIOKafkaProducer | None = None
        self._mqtt: MqttClient | None = None
        self._wake = asyncio.Event()
        self.stats = NotifierStats()

    async def _start(self) -> None:
        s = self._settings
        assert s.kafka_bootstrap and s.mqtt_url
        await ensure_topics(s.kafka_bootstrap)
        await self._pool.open(wait=True)
        self._producer = make_producer(s.kafka_bootstrap, client_id=self.name)
        await self._producer.start()
        self._mqtt = mqtt.mqtt_client(s.mqtt_url, f"vigil-notifier-{socket.gethostname()}-{os.getpid()}")
        await mqtt.connect(self._mqtt, s.mqtt_url)
        self.spawn(self._listen(), "listen")
        self.spawn(self._deliver_forever(), "deliver")

    async def _stop(self) -> None:
        if self._mqtt is not None:
            mqtt.disconnect(self._mqtt)
        if self._producer is not None:
            await self._producer.stop()
        await self._pool.close()

    async def _listen(self) -> None:
        """Turn NOTIFYs into wake-ups; reconnect quietly if the database goes away."""
        assert self._settings.database_url
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._settings.database_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self._wake.set()  # rows may have arrived while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.OperationalError as exc:
                log.warning("outbox listener lost the database (%s); polling until it is back", exc)
                await asyncio.sleep(self._settings.outbox_poll_interval_s)

    async def _deliver_forever(self) -> None:
        backoff = self._settings.outbox_poll_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                while await self.deliver_batch() == _BATCH:
                    pass
                backoff = self._settings.outbox_poll_interval_s
            except (InfrastructureUnavailable, psycopg.OperationalError) as exc:
                self.stats.failures += 1
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                log.warning("outbox delivery paused (%s); next try in %.0fs", exc, backoff)

    async def deliver_batch(self) -> int:
        """Claim, deliver and mark up to one batch; returns the number of rows delivered."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_CLAIM, (_BATCH,))
            rows = await cur.fetchall()
            for row in rows:
                try:
                    await self._deliver(conn, row)
                except InfrastructureUnavailable as exc:
                    await conn.execute(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE outbox_id = %s",
                        (str(exc)[:500], row[0]),
                    )
                    raise
                await conn.execute(
                    "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1 WHERE outbox_id = %s",
                    (row[0],),
                )
        return len(rows)

    async def _deliver(self, conn: psycopg.AsyncConnection[Any], row: tuple[Any, ...]) -> None:
        (
            outbox_id,
            alert_id,
            enterprise_id,
            channel,
            payload,
            code,
            site_id,
            status,
            severity,
            tier,
            summary,
        ) = row
        if channel == "mqtt_notice":
            assert self._mqtt is not None
            await mqtt.publish_qos1(self._mqtt, notices_topic(enterprise_id), orjson.dumps(payload))
            self.stats.notices += 1
            if status == "open":
                await conn.execute(
                    "UPDATE alerts SET status = 'notified', updated_at = now() WHERE alert_id = %s",
                    (alert_id,),
                )
                await conn.execute(
                    "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
                    " VALUES (%s, 'notifier', 'notified', 'open', 'notified', %s)",
                    (alert_id, f"notice sent on {notices_topic(enterprise_id)}"),
                )
                await conn.execute(
                    "INSERT INTO outbox (alert_id, enterprise_id, channel, payload)"
                    " VALUES (%s, %s, 'alert_stream', %s)",
                    (alert_id, enterprise_id, Jsonb({"change": "notified"})),
                )
            return
        assert self._producer is not None
        change = AlertChange(
            alert_id=alert_id,
            enterprise_id=enterprise_id,
            site_id=site_id,
            code=code,
            status=status,
            change=str(payload.get("change", "updated")),
            severity=severity,
            tier=tier,
            at=now_ms(),
            summary=summary,
        )
        try:
            await self._producer.send_and_wait(ALERTS, encode(change), key=alert_id.encode())
        except Exception as exc:  # aiokafka raises several unrelated types for "broker unavailable"
            raise InfrastructureUnavailable(f"Kafka refused alert change {outbox_id}: {exc}") from exc
        self.stats.changes += 1
