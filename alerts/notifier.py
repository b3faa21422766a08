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

# After a failed delivery a row waits 2^attempts seconds, capped, before its next try; a channel
# that is down is not tried again in the same pass.
_ROW_BACKOFF_MAX_S = 300
_PASS_BACKOFF_MAX_S = 30.0

# One row per transaction: a row is marked delivered in the same commit as its claim, so a
# failure later in a pass never rolls back (and re-sends) rows already delivered.
_CLAIM = """
SELECT o.outbox_id, o.alert_id, o.enterprise_id, o.channel, o.payload,
       a.code, a.site_id, a.status, a.severity, a.tier, a.summary
FROM outbox o JOIN alerts a USING (alert_id)
WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now() AND o.channel <> ALL(%s)
ORDER BY o.outbox_id
LIMIT 1
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
            await asyncio.to_thread(mqtt.disconnect, self._mqtt)  # joins paho's thread
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
                _, down = await self.deliver_pending()
            except psycopg.OperationalError as exc:
                down = {"database"}
                log.warning("outbox unreachable (%s)", exc)
            if down:
                self.stats.failures += 1
                backoff = min(backoff * 2, _PASS_BACKOFF_MAX_S)
                log.warning(
                    "outbox delivery paused for %s; next pass in %.0fs", ", ".join(sorted(down)), backoff
                )
            else:
                backoff = self._settings.outbox_poll_interval_s

    async def deliver_pending(self) -> tuple[int, set[str]]:
        """Deliver every row that is due, one transaction each; returns how many were delivered and
        the channels found down (their remaining rows wait for the next pass)."""
        delivered, down = 0, set[str]()
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                row = await (await conn.execute(_CLAIM, (list(down),))).fetchone()
                if row is None:
                    return delivered, down
                try:
                    await self._deliver(conn, row)
                    await conn.execute(
                        "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1"
                        " WHERE outbox_id = %s",
                        (row[0],),
                    )
                    delivered += 1
                    continue
                except InfrastructureUnavailable as exc:
                    down.add(row[3])
                    error = str(exc)
                except ValueError as exc:  # e.g. a topic the broker client refuses: this row only
                    error = f"undeliverable: {exc}"
            # Nothing was written for the failed row (delivery comes before any update), so its claim
            # transaction has simply ended; record the failure in a transaction of its own.
            await self._record_failure(row[0], error)

    async def _record_failure(self, outbox_id: int, error: str) -> None:
        log.warning("outbox row %s not delivered: %s", outbox_id, error)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s,"
                " next_attempt_at = now() + make_interval(secs => LEAST(%s, power(2, attempts)))"
                " WHERE outbox_id = %s",
                (error[:500], _ROW_BACKOFF_MAX_S, outbox_id),
            )

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
                    (alert_id, enterprise_id, Jsonb({"change": "notified", "status": "notified"})),
                )
            return
        assert self._producer is not None
        change = AlertChange(
            alert_id=alert_id,
            enterprise_id=enterprise_id,
            site_id=site_id,
            code=code,
            status=str(payload.get("status", status)),
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
