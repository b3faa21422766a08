"""The telemetry store on the real embedded Kafka and PostgreSQL: readings from `vigil.telemetry.v1`
land in `telemetry` once each, however often they are delivered (into a TimescaleDB chunk that is
already compressed too); bad records are dead-lettered and the rest of their batch is stored; late
readings find a partition or chunk for their day; a database that is away holds the batch back
instead of losing it. Each test that takes `backend` runs on native daily partitions and on
TimescaleDB (tests/databases.py), with the same assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ingest.partitions import Partitions, partition_name
from ingest.storage import TelemetryStore, ms_to_datetime, write_rows
from tests.helpers import KafkaTail
from tests.outage import DatabaseProxy
from vigil.events import DeviceStatus, Telemetry, encode
from vigil.kafka import now_ms
from vigil.settings import Settings
from vigil.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.integration

WAIT_S = 12.0


def reading(uid: str, ts: int, n: int, device: int = 0) -> Telemetry:
    """As the ingest bridge puts it on the topic (key = device id)."""
    return Telemetry(
        enterprise_id=f"ent-{uid}",
        device_id=f"dev-{uid}-{device}",
        site_id=f"site-{uid}",
        profile="freezer",
        ts=ts,
        metrics={"temperature": -18.0 + n / 10, "door": float(n % 2)},
        received_at=ts + 5,
    )


class Store(TelemetryStore):
    """The real service in a consumer group of its own, starting at the test's start time: no
    waiting on another test's member to leave, no replay of the session's earlier telemetry."""

    def __init__(self, settings: Settings, uid: str) -> None:
        super().__init__(settings)
        self.group_id = f"test-telemetry-store-{uid}"
        self._since = now_ms() - 1000

    async def partitions_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        # The end first: a partition with no record since `since` then starts where the next one will go.
        end = await consumer.end_offsets(list(assigned))
        found = await consumer.offsets_for_times({tp: self._since for tp in assigned})
        for tp in assigned:
            hit = found.get(tp)  # Tansu answers offset 0 / timestamp -1 for "none"
            consumer.seek(tp, hit.offset if hit is not None and hit.timestamp >= 0 else end[tp])


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def send(producer: AIOKafkaProducer, *values: Telemetry | DeviceStatus | bytes) -> None:
    for value in values:
        if isinstance(value, bytes):  # a hand-made (bad) record
            await producer.send(TELEMETRY, value, key=b"bad")
        else:
            await producer.send(TELEMETRY, encode(value), key=value.device_id.encode())
    await producer.flush()


async def stored(pool: Any, uid: str) -> list[tuple[str, datetime, str, float, str]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT device_id, ts, metric, value, enterprise_id FROM telemetry"
            " WHERE device_id LIKE %s ORDER BY device_id, ts, metric",
            (f"dev-{uid}-%",),
        )
        rows: list[tuple[str, datetime, str, float, str]] = await cur.fetchall()
        return rows


async def wait_rows(pool: Any, uid: str, count: int) -> list[tuple[str, datetime, str, float, str]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = await stored(pool, uid)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def test_readings_are_stored_once_and_bad_records_dead_lettered(
    settings: Settings, backend_url: str, backend_pool: Any, uid: str, producer: AIOKafkaProducer
) -> None:
    settings, pool = settings.model_copy(update={"database_url": backend_url}), backend_pool
    base = now_ms() - 60_000
    messages = [reading(uid, base + i * 1000, i, device=i % 3) for i in range(30)]
    status = DeviceStatus(f"ent-{uid}", f"dev-{uid}-0", f"site-{uid}", "freezer", base, True, base)
    bad_json = b'{"type": "telemetry", "device_id": "dev-' + uid.encode() + b'-0", "metrics": '
    bad_name = orjson.loads(encode(reading(uid, base, 99))) | {"metrics": {"temp\u0000": 1.0}}
    assert settings.kafka_bootstrap
    async with Store(settings, uid) as store, KafkaTail(settings.kafka_bootstrap, DEADLETTER) as dead:
        await send(producer, *messages[:20], status, bad_json, orjson.dumps(bad_name), *messages[20:])
        rows = await wait_rows(pool, uid, 60)
        assert len(rows) == 60  # 30 readings × 2 metrics; the status message is not a reading
        letters = await dead.wait_for(lambda r: f"dev-{uid}-0" in r["payload"], count=2, timeout=WAIT_S)
        assert {letter["service"] for letter in letters} == {"telemetry-store"}
        assert {letter["reason"] for letter in letters} == {"bad_json", "bad_metric"}

        first = messages[0]
        assert rows[0] == (
            first.device_id,
            ms_to_datetime(first.ts),
            "door",
            0.0,
            first.enterprise_id,
        )

        # The whole stream again (a redelivery after a crash), with one new reading among it.
        duplicates_before = store.stats.duplicates
        fresh = reading(uid, base + 30_000, 30, device=0)
        await send(producer, *messages[::-1], fresh)
        rows = await wait_rows(pool, uid, 62)
        deadline = time.monotonic() + WAIT_S
        while store.stats.duplicates - duplicates_before < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert store.stats.duplicates - duplicates_before >= 60  # other tests' readings share the topic
        assert store.stats.staged_batches >= 1
        assert store.stats.skipped >= 1 and store.stats.dead_lettered >= 2
    assert len(await stored(pool, uid)) == 62


async def test_write_rows_is_idempotent_and_keeps_the_first_value(
    backend: str, backend_pool: Any, uid: str
) -> None:
    pool = backend_pool
    at = datetime.now(UTC).replace(microsecond=0)
    partitions = Partitions()
    async with pool.connection() as conn:
        await partitions.load(conn)
    assert partitions.kind == backend
    await partitions.ensure(pool, {at.date()})
    rows = [(f"dev-{uid}-0", f"ent-{uid}", at + timedelta(seconds=i), "t", float(i)) for i in range(10)]
    assert await write_rows(pool, rows[:6]) == 6  # the fast path: a plain binary COPY
    # Overlapping: four already stored (with other values), four new, one repeated inside the batch.
    again = [(d, e, ts, m, v + 100) for d, e, ts, m, v in rows[2:]] + [rows[9]]
    assert await write_rows(pool, again) == 4
    values = [row[3] for row in await stored(pool, uid)]
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 106.0, 107.0, 108.0, 109.0]


async def chunk_compressed(pool: Any, at: datetime) -> bool | None:
    """Whether the TimescaleDB chunk holding `at` is compressed; None if there is no such chunk."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'telemetry'"
            " AND range_start <= %s AND range_end > %s",
            (at, at),
        )
        row = await cur.fetchone()
    return None if row is None else bool(row[0])


async def test_redelivery_into_a_compressed_chunk_stores_only_what_is_new(
    backend: str, backend_pool: Any, uid: str
) -> None:
    """Ten days back: past TimescaleDB's compression policy (7 days). A redelivered batch meets
    readings that sit in compressed batches; late readings of the same hour land beside them."""
    pool = backend_pool
    at = (datetime.now(UTC) - timedelta(days=10)).replace(hour=6, minute=0, second=0, microsecond=0)
    partitions = Partitions()
    async with pool.connection() as conn:
        await partitions.load(conn)
    await partitions.ensure(pool, {at.date()})
    device, ent = f"dev-{uid}-0", f"ent-{uid}"
    rows = [(device, ent, at + timedelta(minutes=i), "temperature", float(i)) for i in range(20)]
    assert await write_rows(pool, rows) == 20
    if backend == "timescaledb":
        async with pool.connection() as conn:  # what the policy would do, now
            await conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => true)"
                " FROM show_chunks('telemetry', newer_than => %s, older_than => %s) c",
                (at - timedelta(hours=6), at + timedelta(hours=18)),
            )
        assert await chunk_compressed(pool, at) is True

    # The batch again with other values (a redelivery), and five readings the table never had.
    late = [(device, ent, at + timedelta(minutes=20 + i), "temperature", float(20 + i)) for i in range(5)]
    again = [(d, e, ts, m, v + 100) for d, e, ts, m, v in rows] + late
    assert await write_rows(pool, again) == 5
    assert await write_rows(pool, again) == 0
    assert [row[3] for row in await stored(pool, uid)] == [float(i) for i in range(25)]
    if backend == "timescaledb":
        assert await chunk_compressed(pool, at) is True  # partly: the late rows wait for the policy


async def test_late_readings_find_a_partition_or_chunk_for_their_day(
    settings: Settings,
    backend: str,
    backend_url: str,
    backend_pool: Any,
    uid: str,
    producer: AIOKafkaProducer,
) -> None:
    pool = backend_pool
    old = now_ms() - 40 * 86_400_000  # a device replaying its backlog: a day nobody prepared
    day = ms_to_datetime(old).date()
    async with Store(settings.model_copy(update={"database_url": backend_url}), uid):
        if backend == "native":
            today = datetime.now(UTC).date()
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'telemetry'::regclass"
                )
                names = {row[0] for row in await cur.fetchall()}
            ahead = {partition_name(today + timedelta(days=d)) for d in (-1, 0, 1, 2)}
            assert ahead <= names
        await send(producer, reading(uid, old, 1))
        rows = await wait_rows(pool, uid, 2)
    assert len(rows) == 2 and rows[0][1] == ms_to_datetime(old)
    if backend == "native":
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (partition_name(day),))
            assert await cur.fetchone() == (True,)
    else:
        assert await chunk_compressed(pool, ms_to_datetime(old)) is False  # a new, uncompressed chunk


async def test_a_database_outage_holds_the_batch_until_it_is_back(
    settings: Settings, pool: Any, uid: str, producer: AIOKafkaProducer
) -> None:
    """A real outage: the store reaches PostgreSQL through a proxy that is cut while readings
    arrive; nothing is written, nothing is committed, and everything lands once it is back."""
    assert settings.database_url
    proxy = DatabaseProxy(settings.database_url)
    through_proxy = settings.model_copy(update={"database_url": await proxy.start()})
    base = now_ms() - 10_000
    try:
        async with Store(through_proxy, uid):
            proxy.cut()
            await send(producer, *(reading(uid, base + i, i) for i in range(5)))
            await asyncio.sleep(3.0)  # the batch is retried against a database that is not there
            async with pool.connection() as conn:  # (the test's own pool goes straight to it)
                cur = await conn.execute(
                    "SELECT count(*) FROM telemetry WHERE device_id LIKE %s", (f"dev-{uid}%",)
                )
                assert await cur.fetchone() == (0,)
            proxy.restore()
            rows = await wait_rows(pool, uid, 10)
    finally:
        await proxy.stop()
    assert len(rows) == 10
