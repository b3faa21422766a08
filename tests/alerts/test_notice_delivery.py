"""Notices reaching enterprises through trouble, with the real `Notifier`, brokers and database and
real HTTP receivers: a webhook that is down and comes back, one that never does, one removed, and
an enterprise MQTT client that was offline while its notices were sent."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from alerts.notices import NOTICE_COLUMNS, write_notice
from alerts.notifier import Notifier
from alerts.webhook import set_webhook, verify
from shell.infra import free_port
from tests.alerts.test_pipeline import wait_until
from tests.alerts.test_store import apply, rows, violation
from vigil import mqtt
from vigil.settings import Settings
from vigil.topics import notices_topic

HANG = -1  # a receiver answer: accept the request, then say nothing until the test ends


@dataclass
class Received:
    status: int
    notice_id: str | None
    signature: str | None
    content_type: str | None
    user_agent: str | None
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    """An enterprise's webhook endpoint: a real HTTP server on 127.0.0.1 in a thread, answering each
    POST with whatever `answer` is set to (a status code, or HANG)."""

    def __init__(self, port: int, answer: int = 200) -> None:
        self.port, self.answer = port, answer
        self.requests: list[Received] = []
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer
                receiver.requests.append(
                    Received(
                        status,
                        self.headers.get("X-Vigil-Notice-Id"),
                        self.headers.get("X-Vigil-Signature"),
                        self.headers.get("Content-Type"),
                        self.headers.get("User-Agent"),
                        body,
                        time.monotonic(),
                    )
                )
                if status == HANG:
                    receiver._released.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/vigil/notices"

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


def quick(settings: Settings, **overrides: Any) -> Settings:
    """Retries in fractions of a second instead of seconds to an hour."""
    fast = {
        "outbox_poll_interval_s": 0.2,
        "notice_retry_base_s": 0.2,
        "notice_retry_max_s": 1.0,
        "webhook_timeout_s": 2.0,
    }
    return settings.model_copy(update=fast | overrides)


async def enterprise(
    pool: AsyncConnectionPool, enterprise_id: str, webhook_url: str | None = None
) -> str | None:
    """Register an enterprise, with its webhook if given; returns the webhook's secret."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)", (enterprise_id, enterprise_id)
        )
        return await set_webhook(conn, enterprise_id, webhook_url) if webhook_url else None


async def alert_with_notices(
    settings: Settings,
    pool: AsyncConnectionPool,
    enterprise_id: str,
    source: str,
    *kinds: Any,
    status: str = "open",
) -> tuple[str, list[str]]:
    """An alert row and its notices (inbox + outbox), as the alerts service writes them."""
    alert_id = f"alert-{source}"
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, detector, window_start, first_seen, last_seen, deadline)"
            " VALUES (%s, 'COLD_CHAIN_FREEZER_WARM', %s, %s, 'device', %s, %s, 'major', 2, 'too warm',"
            " 'test', now(), now(), now(), now() + interval '4 hours')",
            (alert_id, enterprise_id, f"site-{source}", source, status),
        )
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {NOTICE_COLUMNS} FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
        alert = await cur.fetchone()
        assert alert is not None
        ids = [await write_notice(conn, alert, kind, public_url=settings.public_url) for kind in kinds]
    return alert_id, ids


async def outbox(pool: AsyncConnectionPool, channel: str, alert_ids: list[str]) -> list[tuple[Any, ...]]:
    return await rows(
        pool,
        "SELECT notice_id, attempts, last_error, delivered_at, dead_at FROM outbox"
        " WHERE channel = %s AND alert_id = ANY(%s) ORDER BY outbox_id",
        channel,
        alert_ids,
    )


async def test_webhook_down_then_back_gets_every_notice_signed_and_once_in_effect(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    secret = await enterprise(pool, f"ent-{uid}", f"http://127.0.0.1:{port}/vigil/notices")
    assert secret
    alerts, expected = [], set()
    for i in range(3):
        alert_id, ids = await alert_with_notices(settings, pool, f"ent-{uid}", f"{uid}-{i}", "opened")
        alerts.append(alert_id)
        expected.update(ids)
    _, ids = await alert_with_notices(settings, pool, f"ent-{uid}", f"{uid}-e", "opened", "escalated")
    alerts.append(f"alert-{uid}-e")
    expected.update(ids)
    receiver = None
    try:
        async with Notifier(quick(settings)) as notifier:

            async def refused_and_retried() -> bool:
                webhook = await outbox(pool, "webhook", alerts)
                return any(r[1] >= 2 and r[2] == "ConnectError" for r in webhook)

            await wait_until(refused_and_retried, timeout=10)
            # The enterprise's webhook being down holds up neither MQTT nor the alerts' notified state.
            assert all(r[3] is not None for r in await outbox(pool, "mqtt_notice", alerts))
            assert await rows(
                pool, "SELECT DISTINCT status FROM alerts WHERE alert_id = ANY(%s)", alerts
            ) == [("notified",)]

            receiver = Receiver(port, answer=503)  # up, but not ready yet

            async def answered_503s() -> bool:
                return sum(r.status == 503 for r in receiver.requests) >= 2

            await wait_until(answered_503s, timeout=10)
            receiver.answer = 200

            async def all_delivered() -> bool:
                webhook = await outbox(pool, "webhook", alerts)
                return len(webhook) == len(expected) and all(r[3] is not None for r in webhook)

            await wait_until(all_delivered, timeout=10)
            # Counted on this enterprise's rows: the notifier also works through what earlier tests queued.
            webhook = await outbox(pool, "webhook", alerts)
            assert len(webhook) == len(expected) and notifier.stats.webhooks >= len(expected)
            assert all(dead_at is None for *_, dead_at in webhook)
    finally:
        if receiver is not None:
            receiver.close()
    for request in receiver.requests:  # every try was signed, refused ones too
        assert verify(secret, request.signature or "", request.body), request
        assert request.content_type == "application/json" and request.user_agent == "vigil-notifier"
        assert orjson.loads(request.body)["notice_id"] == request.notice_id
    accepted = [r for r in receiver.requests if r.status == 200]
    assert {r.notice_id for r in accepted} == expected
    kinds = {orjson.loads(r.body)["notice_id"]: orjson.loads(r.body)["kind"] for r in accepted}
    assert sorted(kinds.values()) == ["escalated", "opened", "opened", "opened", "opened"]
    # Two channels delivered each 'opened' notice; only the first moved the alert to notified.
    assert await rows(
        pool,
        "SELECT count(*), count(DISTINCT alert_id) FROM alert_audit"
        " WHERE alert_id = ANY(%s) AND action = 'notified'",
        alerts,
    ) == [(4, 4)]


async def test_a_violation_applied_by_the_store_reaches_the_enterprise_webhook(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    receiver = Receiver(free_port())
    try:
        secret = await enterprise(pool, f"ent-{uid}", receiver.url)
        v = violation(uid)
        assert await apply(pool, v) == "opened"
        async with Notifier(quick(settings)):

            async def both_delivered() -> bool:
                found = await rows(
                    pool,
                    "SELECT channel FROM outbox WHERE alert_id = %s AND notice_id IS NOT NULL"
                    " AND delivered_at IS NOT NULL ORDER BY channel",
                    v.violation_id,
                )
                return found == [("mqtt_notice",), ("webhook",)]

            await wait_until(both_delivered, timeout=10)
    finally:
        receiver.close()
    [request] = receiver.requests
    notice = orjson.loads(request.body)
    assert verify(secret or "", request.signature or "", request.body)
    assert request.notice_id == notice["notice_id"] == f"{v.violation_id}:opened"
    assert (notice["kind"], notice["alert_id"], notice["code"]) == ("opened", v.violation_id, v.code)
    [(status, notified_at)] = await rows(
        pool, "SELECT status, notified_at FROM alerts WHERE alert_id = %s", v.violation_id
    )
    assert status == "notified" and notified_at is not None


async def test_webhook_that_never_recovers_goes_dead_without_holding_up_another(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    hanging, healthy = Receiver(free_port(), answer=HANG), Receiver(free_port())
    try:
        await enterprise(pool, f"bad-{uid}", hanging.url)
        good_secret = await enterprise(pool, f"good-{uid}", healthy.url)
        # The failing enterprise's rows come first in the outbox.
        bad = [await alert_with_notices(settings, pool, f"bad-{uid}", f"b{i}-{uid}", "opened") for i in "12"]
        good = [
            await alert_with_notices(settings, pool, f"good-{uid}", f"g{i}-{uid}", "opened") for i in "12"
        ]
        bad_alerts, good_alerts = [a for a, _ in bad], [a for a, _ in good]
        s = quick(settings, webhook_max_attempts=3, webhook_timeout_s=0.5, notice_retry_base_s=0.1)
        async with Notifier(s) as notifier:

            async def good_delivered() -> bool:
                return all(r[3] is not None for r in await outbox(pool, "webhook", good_alerts))

            await wait_until(good_delivered, timeout=10)
            # Delivered while the hanging receiver still had tries left: it held nobody up.
            assert any(r[4] is None for r in await outbox(pool, "webhook", bad_alerts))

            async def bad_dead() -> bool:
                return all(r[4] is not None for r in await outbox(pool, "webhook", bad_alerts))

            await wait_until(bad_dead, timeout=15)
            await asyncio.sleep(1)  # long enough for a (wrong) further try to arrive
            # At least these two (the shared outbox may hold other tests' undeliverable rows); that
            # exactly this test's two went dead, after exactly three tries each, is checked below.
            assert notifier.stats.dead >= 2
    finally:
        hanging.close()
        healthy.close()
    # After the first hanging try, the failing enterprise's other row waited for a later pass.
    first_good = min(r.at for r in healthy.requests)
    assert sum(r.at < first_good for r in hanging.requests) == 1
    assert [r[1:3] for r in await outbox(pool, "webhook", bad_alerts)] == [(3, "ReadTimeout")] * 2
    assert sorted(str(r.notice_id) for r in hanging.requests) == sorted([ids[0] for _, ids in bad] * 3)
    assert all(r[3] is None for r in await outbox(pool, "webhook", bad_alerts))
    # MQTT is never given up on, and here it simply worked.
    assert all(r[3] and r[4] is None for r in await outbox(pool, "mqtt_notice", bad_alerts))
    dead = await rows(
        pool,
        "SELECT alert_id, actor, from_status, to_status, reason FROM alert_audit"
        " WHERE alert_id = ANY(%s) AND action = 'notice_dead' ORDER BY alert_id",
        bad_alerts,
    )
    assert dead == [(a, "notifier", "notified", "notified", f"{n[0]} webhook: ReadTimeout") for a, n in bad]
    assert sorted(str(r.notice_id) for r in healthy.requests) == sorted(ids[0] for _, ids in good)
    assert all(verify(good_secret or "", r.signature or "", r.body) for r in healthy.requests)


async def test_removed_webhook_kills_its_queued_rows_and_an_escalated_alert_keeps_its_status(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    receiver = Receiver(free_port())
    try:
        await enterprise(pool, f"ent-{uid}", receiver.url)
        # A repeat offence is escalated as it opens: its first notice must not move it back.
        alert_id, [notice_id] = await alert_with_notices(
            settings, pool, f"ent-{uid}", uid, "opened", status="escalated"
        )
        async with pool.connection() as conn:
            await set_webhook(conn, f"ent-{uid}", None)
        async with Notifier(quick(settings)):

            async def settled() -> bool:
                return all(r[3] or r[4] for r in await outbox(pool, "webhook", [alert_id])) and all(
                    r[3] for r in await outbox(pool, "mqtt_notice", [alert_id])
                )

            await wait_until(settled, timeout=10)
    finally:
        receiver.close()
    [(_, attempts, error, delivered, dead)] = await outbox(pool, "webhook", [alert_id])
    assert (attempts, error, delivered is None, dead is not None) == (1, "webhook removed", True, True)
    assert receiver.requests == []
    [(status, notified_at)] = await rows(
        pool, "SELECT status, notified_at FROM alerts WHERE alert_id = %s", alert_id
    )
    assert status == "escalated" and notified_at is not None
    assert await rows(
        pool, "SELECT action, from_status, to_status, reason FROM alert_audit WHERE alert_id = %s", alert_id
    ) == [("notice_dead", "escalated", "escalated", f"{notice_id} webhook: webhook removed")]


async def test_enterprise_mqtt_client_offline_gets_its_notices_on_reconnect(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    assert settings.mqtt_url
    await enterprise(pool, f"ent-{uid}")
    topic, client_id = notices_topic(f"ent-{uid}"), f"ent-{uid}-erp"
    loop = asyncio.get_running_loop()

    # Online once: a persistent session (clean_session=False) subscribed at QoS 1, then gone.
    client = mqtt.mqtt_client(settings.mqtt_url, client_id, clean_session=False)
    subscribed: asyncio.Future[list[Any]] = loop.create_future()

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        loop.call_soon_threadsafe(subscribed.set_result, codes)

    client.on_subscribe = on_subscribe
    await mqtt.connect(client, settings.mqtt_url)
    client.subscribe(topic, qos=1)
    [granted] = await asyncio.wait_for(subscribed, 10)
    assert granted.value == 1
    await asyncio.to_thread(mqtt.disconnect, client)

    alerts, expected = [], set()
    for i in range(3):
        alert_id, ids = await alert_with_notices(settings, pool, f"ent-{uid}", f"{uid}-{i}", "opened")
        alerts.append(alert_id)
        expected.update(ids)
    async with Notifier(quick(settings)):

        async def published() -> bool:
            return all(r[3] is not None for r in await outbox(pool, "mqtt_notice", alerts))

        await wait_until(published, timeout=10)

    # Back with the same id: the broker kept the session and hands over what came meanwhile,
    # without the client subscribing again.
    received: queue.Queue[tuple[str, int, bytes]] = queue.Queue()
    present: list[bool] = []
    again = mqtt.mqtt_client(settings.mqtt_url, client_id, clean_session=False)
    again.on_message = lambda _c, _u, msg: received.put((msg.topic, msg.qos, bytes(msg.payload)))
    again.on_connect = lambda _c, _u, flags, _rc, _p: present.append(flags.session_present)
    await mqtt.connect(again, settings.mqtt_url)
    try:
        got = [await asyncio.to_thread(received.get, True, 10) for _ in expected]
        await asyncio.sleep(0.5)
        assert received.empty()
    finally:
        await asyncio.to_thread(mqtt.disconnect, again)
    assert present == [True]
    assert {t for t, _, _ in got} == {topic} and {q for _, q, _ in got} == {1}
    assert {orjson.loads(p)["notice_id"] for _, _, p in got} == expected


async def test_failed_rows_back_off_exponentially_up_to_the_cap(
    settings: Settings, pool: AsyncConnectionPool, uid: str
) -> None:
    receiver = Receiver(free_port(), answer=500)
    try:
        await enterprise(pool, f"ent-{uid}", receiver.url)
        fresh, _ = await alert_with_notices(settings, pool, f"ent-{uid}", f"{uid}-f", "opened")
        old, _ = await alert_with_notices(settings, pool, f"ent-{uid}", f"{uid}-o", "opened")
        async with pool.connection() as conn:  # as if it had failed five times already
            await conn.execute("UPDATE outbox SET attempts = 5 WHERE alert_id = %s", (old,))
        s = quick(settings, notice_retry_base_s=30.0, notice_retry_max_s=45.0)
        async with Notifier(s):

            async def both_failed() -> list[tuple[Any, ...]]:
                return await rows(
                    pool,
                    "SELECT alert_id, attempts, extract(epoch FROM next_attempt_at - now())::float8"
                    " FROM outbox WHERE channel = 'webhook' AND alert_id = ANY(%s)"
                    " AND last_error = 'HTTP 500' ORDER BY alert_id",
                    [fresh, old],
                )

            waits = await wait_until(lambda: _all_of(both_failed, 2), timeout=10)
    finally:
        receiver.close()
    by_alert = {a: (attempts, wait) for a, attempts, wait in waits}
    assert by_alert[fresh][0] == 1 and 25 < by_alert[fresh][1] <= 30  # base * 2^0
    assert by_alert[old][0] == 6 and 40 < by_alert[old][1] <= 45  # base * 2^5, capped
    assert len(receiver.requests) == 2  # neither was tried again in the meantime


async def _all_of(
    query: Callable[[], Awaitable[list[tuple[Any, ...]]]], count: int
) -> list[tuple[Any, ...]] | None:
    found = await query()
    return found if len(found) == count else None
