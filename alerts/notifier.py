"""The notifier: delivers the outbox — enterprise notices on MQTT `vigil/v1/{enterprise}/notices`
(QoS 1) and to the enterprise's signed webhook, alert changes on `vigil.alerts.v1` — then marks
each row delivered.

Woken by NOTIFY from the alerts service, with a poll as the fallback. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several notifiers share the outbox. Delivery is at-least-once: a
crash after a publish but before the commit re-sends it; notices carry a stable `notice_id` so a
receiver can drop the repeat.

A failed row waits `notice_retry_base_s * 2^attempts` seconds (capped at `notice_retry_max_s`).
MQTT and Kafka are ours: one found down pauses its channel for the pass and is retried for ever.
A webhook is the enterprise's: after a failure its other webhook rows wait for the next pass (one
slow receiver cannot hold up anyone else), and after `webhook_max_attempts` failures the row goes
dead with an audit entry on its alert. The first notice of an alert delivered on any push channel
moves it from open to notified.

MQTT notices are signed like webhooks (`alerts.webhook.sign_notice`) with the enterprise's notice
secret (`alerts.notices.notice_secret`), so an enterprise can tell a notice of ours from one
planted by anyone else who can publish on its topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from paho.mqtt.client import Client as MqttClient

from alerts.notices import OUTBOX_CHANNEL, notice_secret, write_change
from alerts.webhook import WebhookFailed, WebhookSender, sign_notice
from vigil import metrics, mqtt
from vigil.db import make_pool
from vigil.errors import InfrastructureUnavailable
from vigil.events import AlertChange, encode
from vigil.kafka import ensure_topics, make_producer, now_ms
from vigil.service import Service
from vigil.settings import Settings
from vigil.topics import ALERTS, notices_topic

log = logging.getLogger(__name__)

# After a pass that found a channel of ours (or the database) down, the poll interval doubles up
# to this until a pass goes through, so an outage is not polled for every couple of seconds.
_PASS_BACKOFF_MAX_S = 30.0
# last_error is for people reading the row; a receiver's or broker's long message is cut here.
_ERROR_MAX_CHARS = 500

# One row per transaction: a row is marked delivered in the same commit as its claim, so a
# failure later in a pass never rolls back (and re-sends) rows already delivered. The webhook's
# URL and secret are read at delivery, so a changed URL or rotated secret applies to queued rows.
_CLAIM = """
SELECT o.outbox_id, o.alert_id, o.enterprise_id, o.channel, o.payload,
       a.code, a.site_id, a.status, a.severity, a.tier, a.summary,
       e.webhook_url, e.webhook_secret
FROM outbox o JOIN alerts a USING (alert_id)
LEFT JOIN enterprises e ON o.channel = 'webhook' AND e.enterprise_id = o.enterprise_id
WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= now()
  AND o.channel <> ALL(%(down)s)
  AND NOT (o.channel = 'webhook' AND o.enterprise_id = ANY(%(failing)s))
ORDER BY o.outbox_id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""

# The failure is counted and the row backs off; a webhook row out of attempts goes dead instead,
# with an audit entry on its alert (in the same statement, so the two cannot disagree).
_RECORD_FAILURE = """
WITH failed AS (
    UPDATE outbox SET attempts = attempts + 1, last_error = %(error)s,
        next_attempt_at = now() + make_interval(secs => LEAST(%(max_s)s, %(base_s)s * power(2, attempts))),
        dead_at = CASE WHEN channel = 'webhook' AND (attempts + 1 >= %(max_attempts)s OR %(dead)s)
                       THEN now() END
    WHERE outbox_id = %(outbox_id)s
    RETURNING alert_id, notice_id, dead_at
)
INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)
SELECT a.alert_id, 'notifier', 'notice_dead', a.status, a.status,
       COALESCE(f.notice_id, '-') || ' webhook: ' || %(error)s
FROM failed f JOIN alerts a USING (alert_id)
WHERE f.dead_at IS NOT NULL
RETURNING 1
"""


class _WebhookRemoved(Exception):
    """The enterprise removed its webhook after the notice was queued for it."""


@dataclass(slots=True)
class NotifierStats:
    notices: int = 0  # on MQTT
    webhooks: int = 0
    changes: int = 0
    failures: int = 0  # passes that found a channel of ours (or the database) down
    dead: int = 0  # webhook rows given up on


class Notifier(Service):
    name = "notifier"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url and settings.mqtt_url
        self._settings = settings
        # Refused before anything starts: an unsigned notice would be indistinguishable from a forgery.
        self._signing_key = settings.require_secret("notice_signing_key")
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self._producer: AIOKafkaProducer | None = None
        self._mqtt: MqttClient | None = None
        self._webhooks: WebhookSender | None = None
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
        self._webhooks = WebhookSender(s.webhook_timeout_s)
        self.spawn(self._listen(), "listen")
        self.spawn(self._deliver_forever(), "deliver")

    async def _stop(self) -> None:
        if self._webhooks is not None:
            await self._webhooks.aclose()
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
        delivered, down, failing = 0, set[str](), set[str]()
        while True:
            dead = False
            async with self._pool.connection() as conn, conn.transaction():
                claim = {"down": list(down), "failing": list(failing)}
                row = await (await conn.execute(_CLAIM, claim)).fetchone()
                if row is None:
                    return delivered, down
                outbox_id, channel, enterprise_id = row[0], row[3], row[2]
                try:
                    await self._deliver(conn, row)
                    await conn.execute(
                        "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1"
                        " WHERE outbox_id = %s",
                        (outbox_id,),
                    )
                    delivered += 1
                    metrics.notices.labels(channel, "delivered").inc()
                    continue
                except InfrastructureUnavailable as exc:
                    down.add(channel)
                    error = str(exc)
                except WebhookFailed as exc:
                    failing.add(enterprise_id)
                    error = exc.reason
                except _WebhookRemoved:
                    error, dead = "webhook removed", True
                except ValueError as exc:  # e.g. a topic the broker client refuses: this row only
                    error = f"undeliverable: {exc}"
            # Nothing was written for the failed row (delivery comes before any update), so its claim
            # transaction has simply ended; record the failure in a transaction of its own.
            metrics.notices.labels(channel, "failed").inc()
            await self._record_failure(outbox_id, error, channel, dead=dead)

    async def _record_failure(self, outbox_id: int, error: str, channel: str, *, dead: bool = False) -> None:
        s = self._settings
        log.warning("outbox row %s not delivered: %s", outbox_id, error)
        params = {
            "error": error[:_ERROR_MAX_CHARS],
            "max_s": s.notice_retry_max_s,
            "base_s": s.notice_retry_base_s,
            "max_attempts": s.webhook_max_attempts,
            "dead": dead,
            "outbox_id": outbox_id,
        }
        async with self._pool.connection() as conn:
            if await (await conn.execute(_RECORD_FAILURE, params)).fetchone() is not None:
                self.stats.dead += 1
                metrics.notices.labels(channel, "dead").inc()
                log.error("outbox row %s is dead: %s", outbox_id, error)

    async def _deliver(self, conn: psycopg.AsyncConnection[Any], row: tuple[Any, ...]) -> None:
        outbox_id, alert_id, enterprise_id, channel, payload = row[:5]
        code, site_id, status, severity, tier, summary, webhook_url, webhook_secret = row[5:]
        if channel == "mqtt_notice":
            assert self._mqtt is not None
            secret = notice_secret(self._signing_key, enterprise_id)
            signed = sign_notice(secret, payload, int(time.time()))
            await mqtt.publish_qos1(self._mqtt, notices_topic(enterprise_id), signed)
            self.stats.notices += 1
            await self._notified(conn, alert_id, enterprise_id, payload, notices_topic(enterprise_id))
            return
        if channel == "webhook":
            if webhook_url is None:  # removed since the notice was queued
                raise _WebhookRemoved
            assert self._webhooks is not None
            await self._webhooks.post(webhook_url, webhook_secret, payload)
            self.stats.webhooks += 1
            await self._notified(conn, alert_id, enterprise_id, payload, "the webhook")
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

    async def _notified(
        self, conn: psycopg.AsyncConnection[Any], alert_id: str, enterprise_id: str, notice: Any, via: str
    ) -> None:
        """After an 'opened' notice was delivered: the first channel to get there moves an alert that
        is still open to notified; `notified_at` is set once, whatever the alert's status by then."""
        # Notices queued before notices had a kind were all 'opened' ones.
        if notice.get("kind", "opened") != "opened":
            return
        # The conditional UPDATE serialises notifiers delivering the same alert on two channels at
        # once: the second waits for the first's commit, then finds the alert no longer open.
        cur = await conn.execute(
            "UPDATE alerts SET status = 'notified', notified_at = COALESCE(notified_at, now()),"
            " updated_at = now() WHERE alert_id = %s AND status = 'open' RETURNING 1",
            (alert_id,),
        )
        if await cur.fetchone() is None:
            await conn.execute(
                "UPDATE alerts SET notified_at = now() WHERE alert_id = %s AND notified_at IS NULL",
                (alert_id,),
            )
            return
        await conn.execute(
            "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
            " VALUES (%s, 'notifier', 'notified', 'open', 'notified', %s)",
            (alert_id, f"notice sent on {via}"),
        )
        await write_change(conn, alert_id, enterprise_id, "notified", "notified")
