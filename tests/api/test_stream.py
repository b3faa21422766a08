"""The live stream on a real uvicorn and the real embedded Kafka: changes published on
`vigil.alerts.v1` arrive as server-sent events, a reconnect with Last-Event-ID resumes exactly
where the client was (nothing missed, nothing repeated), enterprises see only their own changes,
and a client that goes away takes its Kafka consumer with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from api import create_app, stream
from api.stream import AlertStream, active_streams, format_event_id, parse_event_id
from tests.api.conftest import AUTH, Seeder, bearer, make_key
from vigil.events import AlertChange, encode
from vigil.http import EmbeddedHttpServer
from vigil.kafka import now_ms
from vigil.settings import Settings
from vigil.topics import ALERTS

pytestmark = pytest.mark.integration

WAIT_S = 10.0


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a free port: httpx's ASGITransport buffers whole responses,
    so an endless stream needs a real server."""
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        tasks.append(task)
        return task

    http = EmbeddedHttpServer(app, host="127.0.0.1", port=0, label="test API")
    await http.start(spawn)
    try:
        yield http.url
    finally:
        await http.shutdown()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def change(uid: str, n: int, enterprise: str | None = None) -> AlertChange:
    return AlertChange(
        alert_id=f"a-{uid}-{n:03d}",
        enterprise_id=enterprise or f"ent-{uid}",
        site_id=f"site-{uid}",
        code="COLD_CHAIN_FREEZER_WARM",
        status="open",
        change="opened",
        severity="major",
        tier=2,
        at=now_ms(),
        summary=f"change {n}",
    )


async def publish(producer: AIOKafkaProducer, *changes: AlertChange) -> None:
    """As the notifier publishes: keyed by alert id (spread over the partitions), one record per
    request. (Tansu's end offsets lag after a request of several records, so a stream opened at
    "the end" could start a record or two early there; Apache Kafka's do not.)"""
    for c in changes:
        await producer.send_and_wait(ALERTS, encode(c), key=c.alert_id.encode())


class Events:
    """Server-sent events parsed off a live response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT_S) -> dict[str, str]:
        """The next event or comment: fields by name (`data`, `id`, `retry`) or `{"comment": …}`."""
        event: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line == "":
                    if event:
                        return event
                    continue
                if line.startswith(":"):
                    return {"comment": line[1:].strip()}
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def changes(
        self, uid: str, count: int, timeout: float = WAIT_S
    ) -> tuple[list[dict[str, Any]], str]:
        """The next `count` changes of this test (others' are skipped) and the last id seen."""
        found: list[dict[str, Any]] = []
        last_id = ""
        deadline = time.monotonic() + timeout
        while len(found) < count:
            event = await self.next(timeout=max(0.1, deadline - time.monotonic()))
            if "id" in event:
                last_id = event["id"]
            if "data" in event:
                data = orjson.loads(event["data"])
                if uid in data["alert_id"]:
                    found.append(data)
        return found, last_id


@asynccontextmanager
async def connect(url: str, headers: dict[str, str] | None = None, **params: Any) -> AsyncIterator[Events]:
    async with (
        httpx.AsyncClient(base_url=url, headers=headers or AUTH, timeout=WAIT_S) as client,
        client.stream("GET", "/api/v1/stream", params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        events = Events(response)
        opening = await events.next()
        assert opening["retry"] == "3000" and parse_event_id(opening["id"])  # the start position
        yield events


async def gone(app: FastAPI, *streams: AlertStream) -> None:
    deadline = time.monotonic() + WAIT_S
    while any(s in active_streams(app) or not s.closed for s in streams):
        assert time.monotonic() < deadline, "the stream's consumer outlived its client"
        await asyncio.sleep(0.05)


async def test_reconnecting_with_last_event_id_misses_and_repeats_nothing(
    app: FastAPI, server: str, producer: AIOKafkaProducer, uid: str
) -> None:
    first_batch = [change(uid, n) for n in range(8)]
    second_batch = [change(uid, n) for n in range(8, 14)]
    async with connect(server) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-cache"
        assert events.response.headers["x-accel-buffering"] == "no"
        [mine] = active_streams(app)
        await publish(producer, *first_batch)
        seen, last_id = await events.changes(uid, 3)
    # Disconnected mid-way: the client got only three changes before the connection dropped.
    await gone(app, mine)
    await publish(producer, *second_batch)
    async with connect(server, headers={**AUTH, "Last-Event-ID": last_id}) as events:
        rest, _ = await events.changes(uid, 11)
        seen += rest
        with pytest.raises(TimeoutError):  # and nothing after them: no repeats
            await events.changes(uid, 1, timeout=1.5)
    ids = [c["alert_id"] for c in seen]
    assert sorted(ids) == sorted(c.alert_id for c in first_batch + second_batch)
    assert len(set(ids)) == len(ids) == 14
    # Per partition (per key here) the order is the order of publication.
    assert [c["summary"] for c in seen if c["alert_id"] == first_batch[0].alert_id] == ["change 0"]


async def test_resume_by_query_parameter_and_the_header_wins(
    server: str, producer: AIOKafkaProducer, uid: str
) -> None:
    async with connect(server) as events:
        await publish(producer, change(uid, 1))
        _, after_first = await events.changes(uid, 1)
        await publish(producer, change(uid, 2))
        _, after_second = await events.changes(uid, 1)
    await publish(producer, change(uid, 3))
    async with connect(server, last_event_id=after_first) as events:  # an EventSource-less client
        got, _ = await events.changes(uid, 2)
        assert sorted(c["alert_id"] for c in got) == [f"a-{uid}-002", f"a-{uid}-003"]
    # EventSource reconnects to the same URL (old id in the query) with the newer id in the header.
    async with connect(server, {**AUTH, "Last-Event-ID": after_second}, last_event_id=after_first) as events:
        got, _ = await events.changes(uid, 1)
        assert [c["alert_id"] for c in got] == [f"a-{uid}-003"]


async def test_since_starts_at_a_time(server: str, producer: AIOKafkaProducer, uid: str) -> None:
    await publish(producer, change(uid, 1))
    await asyncio.sleep(0.05)
    since = now_ms()
    await asyncio.sleep(0.05)
    await publish(producer, change(uid, 2), change(uid, 3))
    async with connect(server, since=since) as events:
        got, _ = await events.changes(uid, 2)
        assert sorted(c["alert_id"] for c in got) == [f"a-{uid}-002", f"a-{uid}-003"]
    async with connect(server, since=now_ms() + 60_000) as events:  # nothing yet: from the end
        await publish(producer, change(uid, 4))
        got, _ = await events.changes(uid, 1)
        assert [c["alert_id"] for c in got] == [f"a-{uid}-004"]


async def test_an_enterprise_sees_only_its_own_changes(
    server: str, pool: Any, seed: Seeder, producer: AIOKafkaProducer, uid: str
) -> None:
    other = f"other-{uid}"
    await seed.registry(other, f"site-other-{uid}")
    mine_key = await make_key(pool, "enterprise", seed.enterprise)
    operator_key = await make_key(pool, "operator")
    async with connect(server, bearer(mine_key)) as own, connect(server, bearer(operator_key)) as wall:
        await publish(producer, change(uid, 1), change(uid, 2, other), change(uid, 3), change(uid, 4, other))
        got, own_id = await own.changes(uid, 2)
        assert sorted(c["alert_id"] for c in got) == [f"a-{uid}-001", f"a-{uid}-003"]
        assert {c["enterprise_id"] for c in got} == {seed.enterprise}
        everything, wall_id = await wall.changes(uid, 4)
        assert {c["enterprise_id"] for c in everything} == {seed.enterprise, other}
        # The other enterprise's changes still move the enterprise's position past them (by an
        # id-only event when they end a batch), so a reconnect does not read them again.
        while parse_event_id(own_id) != parse_event_id(wall_id):
            event = await own.next()
            assert "data" not in event or uid not in event["data"]
            own_id = event.get("id", own_id)


async def test_an_id_beyond_the_log_resumes_at_its_beginning(
    server: str, producer: AIOKafkaProducer, uid: str
) -> None:
    # What a client holds after the embedded broker restarted with an empty log: positions the
    # new log has not reached. Waiting for it to get there would miss every change until then.
    far = format_event_id({0: 10**12, 1: 10**12, 2: 10**12})
    async with connect(server, {**AUTH, "Last-Event-ID": far}) as events:
        await publish(producer, change(uid, 1))
        got, last_id = await events.changes(uid, 1)
    assert [c["alert_id"] for c in got] == [f"a-{uid}-001"]
    assert all(offset < 10**12 for offset in parse_event_id(last_id).values())


async def test_heartbeat_comments_keep_an_idle_stream_alive(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "HEARTBEAT_S", 0.3)
    monkeypatch.setattr(stream, "POLL_MS", 100)
    async with connect(server) as events:
        pings = [await events.next(timeout=3) for _ in range(2)]
    assert all(p == {"comment": "ping"} or "id" in p for p in pings)
    assert {"comment": "ping"} in pings


async def test_a_client_that_goes_away_takes_its_consumer_with_it(app: FastAPI, server: str) -> None:
    before = set(active_streams(app))
    async with connect(server) as _, connect(server) as _:
        streams = active_streams(app) - before
        assert len(streams) == 2 and not any(s.closed for s in streams)
    await gone(app, *streams)


@pytest.mark.parametrize(
    "bad",
    ["garbage", "0:1,0:2", "99:0", "-1:5", "0:01", "0:1,", "0:1;1:2", "0:" + "9" * 19, "0:1\n1:2"],
)
async def test_an_id_the_stream_never_issued_is_a_400(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/api/v1/stream", params={"last_event_id": bad})
    assert response.status_code == 400, response.text
    assert "Last-Event-ID" in response.json()["detail"]


async def test_without_a_token_or_without_kafka(client: httpx.AsyncClient, api_settings: Settings) -> None:
    assert (await client.get("/api/v1/stream", headers={"Authorization": ""})).status_code == 401
    app = create_app(api_settings.model_copy(update={"kafka_bootstrap": None}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as c:
            response = await c.get("/api/v1/stream")
    assert response.status_code == 503
    assert "VIGIL_KAFKA_BOOTSTRAP" in response.json()["detail"]


async def test_unreachable_kafka_is_a_503_and_leaks_nothing(api_settings: Settings) -> None:
    from shell.infra import free_port

    app = create_app(api_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as c:
            response = await c.get("/api/v1/stream")
    assert response.status_code == 503, response.text
    assert active_streams(app) == set()


def test_event_ids_round_trip() -> None:
    positions = {2: 77, 0: 120, 1: 98}
    assert format_event_id(positions) == "0:120,1:98,2:77"
    assert parse_event_id("0:120,1:98,2:77") == positions


# --- the stream ends with its credential -------------------------------------------------------

# The bound: a stream ends "within seconds" of its credential ending (checked every 2 s).
END_WITHIN_S = 5.0


async def ends_soon(events: Events) -> None:
    """The stream ends (the server closes it) within END_WITHIN_S."""
    deadline = time.monotonic() + END_WITHIN_S
    with pytest.raises(AssertionError, match="the stream ended"):
        while True:
            await events.next(timeout=max(0.1, deadline - time.monotonic()))


async def test_a_stream_ends_when_its_key_is_revoked(server: str, pool: Any) -> None:
    from vigil.keys import revoke_key

    key = await make_key(pool, "operator")
    async with connect(server, bearer(key)) as events:
        await asyncio.sleep(CHECK_GRACE_S)
        async with pool.connection() as conn, conn.transaction():
            await revoke_key(conn, key.split("_")[1])
        await ends_soon(events)
    async with httpx.AsyncClient(base_url=server, timeout=WAIT_S) as c:
        assert (await c.get("/api/v1/stream", headers=bearer(key))).status_code == 401


async def test_sign_out_ends_the_session_and_its_stream(server: str, pool: Any) -> None:
    key = await make_key(pool, "operator")
    async with httpx.AsyncClient(base_url=server, timeout=WAIT_S) as c:
        token = (await c.post("/api/v1/auth/session", headers=bearer(key))).json()["token"]
        async with connect(server, bearer(token)) as events:
            await asyncio.sleep(CHECK_GRACE_S)
            assert (await c.delete("/api/v1/auth/session", headers=bearer(token))).status_code == 204
            await ends_soon(events)
        assert (await c.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401
        # The key itself is not a session: it is revoked, not signed out.
        assert (await c.delete("/api/v1/auth/session", headers=bearer(key))).status_code == 400
        assert (await c.get("/api/v1/auth/me", headers=bearer(key))).status_code == 200


async def test_a_stream_ends_when_its_session_expires(server: str, pool: Any) -> None:
    key = await make_key(pool, "operator")
    async with httpx.AsyncClient(base_url=server, timeout=WAIT_S) as c:
        token = (await c.post("/api/v1/auth/session", headers=bearer(key))).json()["token"]
    async with connect(server, bearer(token)) as events:
        await asyncio.sleep(CHECK_GRACE_S)
        async with pool.connection() as conn:  # the session's TTL runs out now
            await conn.execute(
                "UPDATE api_tokens SET expires_at = now() WHERE key_id = %s", (key.split("_")[1],)
            )
        await ends_soon(events)


# Long enough that the stream's first credential check has passed: the end is the revocation's.
CHECK_GRACE_S = 0.5
