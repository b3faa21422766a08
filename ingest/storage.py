"""The telemetry store: `vigil.telemetry.v1` → the `telemetry` table, by binary COPY.

A consumer-group member (`vigil run telemetry-store`; N copies split the partitions). Each fetched
batch becomes one binary COPY of (device_id, enterprise_id, ts, metric, value) rows, and the
batch's offsets are committed only after the database commit: a crash replays readings, never
skips them.

Idempotency: the table's primary key (device_id, ts, metric). The batch is first COPied straight
into `telemetry` — the fast path, as fast as a raw COPY, taken by every batch that holds nothing
already stored. A redelivered batch (after a crash or a rebalance), or one that repeats a reading
(a device's QoS 1 retransmission), makes that COPY fail on the key; the transaction is rolled back
and the batch goes the staged way: binary COPY into a session temp table, then `INSERT … SELECT …
ON CONFLICT DO NOTHING`. A first reading per key wins; a repeat is counted and dropped.
(`vigil bench`-style figures: `python -m ingest.storage` measures both ways against a raw COPY.)

Failures: while the database is down the batch is retried with backoff (nothing is skipped, the
consumer simply stops fetching). A record that is not a device message, or whose readings cannot
be stored, is dead-lettered alone with the reason; the rest of the batch is stored. Device events
and status messages also travel on the topic: they are not readings and are skipped.

Partitions (native partitioning, no TimescaleDB): one per UTC day, named `telemetry_pYYYYMMDD`,
created for yesterday to the day after tomorrow at start and hourly, and on demand for any day a
batch touches (a device replaying its backlog). Creation is `CREATE TABLE` + `ATTACH PARTITION`,
which locks the parent only against other schema changes, not against readers or writers.
Partitions past `VIGIL_TELEMETRY_RETENTION_DAYS` are dropped (or trimmed to the readings an alert
still needs) by the retention pass this service runs hourly (vigil/retention.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from vigil.db import migrate
from vigil.errors import InvalidMessage
from vigil.events import Telemetry, decode_device_message
from vigil.settings import Settings
from vigil.topics import TELEMETRY
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

TABLE = "telemetry"
COLUMNS = ("device_id", "enterprise_id", "ts", "metric", "value")
# Binary COPY sends each value in PostgreSQL's own wire format: no text rendering and parsing.
_COPY_TYPES = ["text", "text", "timestamptz", "text", "float8"]
# A reading as COPY takes it: (device_id, enterprise_id, ts, metric, value).
Row = tuple[str, str, datetime, str, float]

# The ingest bridge's rule for metric names (ingest/payloads.py). Checked again here because a
# name the database cannot store (a NUL) would otherwise refuse the whole batch.
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# Backoff while the database is unreachable: fast for a blip, capped so recovery is noticed soon.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 5.0
# Partitions exist from this many days back to this many ahead, refreshed this often.
_PARTITIONS_BEHIND, _PARTITIONS_AHEAD = 1, 2
_PARTITION_REFRESH_S = 3600.0
# Taken in the transaction that creates partitions, so two stores never race to create one.
_PARTITION_LOCK_KEY = 0x5649_4754  # "VIGT"
# Schema changes wait at most this long for a lock (a long trace query holds the parent table);
# then the batch is retried, instead of queueing every reader and writer behind the change.
_DDL_LOCK_TIMEOUT = "5s"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Partitioning = Literal["native", "timescaledb", "none"]


def ms_to_datetime(ms: int) -> datetime:
    """Exact (no float rounding) conversion of epoch milliseconds to an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def readings(message: Telemetry) -> list[Row]:
    """One row per metric of a telemetry message; InvalidMessage for a metric name we cannot store."""
    ts = ms_to_datetime(message.ts)
    rows: list[Row] = []
    for metric, value in message.metrics.items():
        if not _METRIC_NAME.fullmatch(metric):
            raise InvalidMessage(
                "bad_metric", f"metric name {metric[:80]!r} must be 1-64 of A-Z a-z 0-9 _ . -"
            )
        rows.append((message.device_id, message.enterprise_id, ts, metric, float(value)))
    return rows


# --- partitions ----------------------------------------------------------------------------------


async def partitioning(conn: psycopg.AsyncConnection[Any]) -> Partitioning:
    """How the telemetry table is split: by our daily partitions, by TimescaleDB chunks, or not."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)),"
        " EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
        (TABLE,),
    )
    row = await cur.fetchone()
    assert row is not None
    if row[0]:
        return "native"
    return "timescaledb" if row[1] else "none"


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


async def create_partitions(conn: psycopg.AsyncConnection[Any], days: Iterable[date]) -> list[str]:
    """Create the daily partitions of `days` that do not exist yet (native partitioning only);
    returns the names created. Commits on its own (one short transaction)."""
    created: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK_KEY,))
        await conn.execute(f"SET LOCAL lock_timeout = '{_DDL_LOCK_TIMEOUT}'")
        for day in sorted(set(days)):
            name = partition_name(day)
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
            exists = await cur.fetchone()
            if exists is not None and exists[0]:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            # Created apart and attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, where
            # CREATE TABLE … PARTITION OF would block every reader and writer of it meanwhile.
            await conn.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                    sql.Identifier(name), sql.Identifier(TABLE)
                )
            )
            await conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(TABLE),
                    sql.Identifier(name),
                    sql.Literal(start),
                    sql.Literal(start + timedelta(days=1)),
                )
            )
            created.append(name)
    if created:
        log.info("created telemetry partitions %s", ", ".join(created))
    return created


class Partitions:
    """Knows which daily partitions exist, so a batch costs no catalogue query in the usual case."""

    def __init__(self) -> None:
        self.kind: Partitioning = "none"
        self._known: set[date] = set()

    async def load(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.kind = await partitioning(conn)
        self._known.clear()

    async def ensure(self, pool: AsyncConnectionPool[Any], days: Iterable[date]) -> None:
        if self.kind != "native":
            return
        missing = set(days) - self._known
        if not missing:
            return
        async with pool.connection() as conn:
            await create_partitions(conn, missing)
        self._known |= missing

    async def ensure_around_today(self, pool: AsyncConnectionPool[Any]) -> None:
        today = datetime.now(UTC).date()
        await self.ensure(
            pool, (today + timedelta(days=d) for d in range(-_PARTITIONS_BEHIND, _PARTITIONS_AHEAD + 1))
        )

    def forget(self) -> None:
        """After "no partition for this row": someone dropped one; look again."""
        self._known.clear()


# --- writing -------------------------------------------------------------------------------------

_COPY_INTO = "COPY {} ({}) FROM STDIN (FORMAT BINARY)"
# Per session (pooled connections keep it), emptied by every commit.
_STAGE = "telemetry_stage"


async def copy_rows(conn: psycopg.AsyncConnection[Any], rows: Sequence[Row], table: str = TABLE) -> None:
    """Binary COPY of `rows` into `table` in the caller's transaction: the raw path."""
    query = sql.SQL(_COPY_INTO).format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    )
    async with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            await copy.write_row(row)


async def stage_rows(conn: psycopg.AsyncConnection[Any], rows: Sequence[Row]) -> int:
    """The idempotent path, in the caller's transaction: binary COPY into a temp table emptied on
    commit, then INSERT … ON CONFLICT DO NOTHING. Returns the rows actually inserted."""
    # Created in the caller's transaction, so created again if that one is rolled back.
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(_STAGE), sql.Identifier(TABLE)
        )
    )
    await copy_rows(conn, rows, _STAGE)
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    cur = await conn.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(TABLE), columns, columns, sql.Identifier(_STAGE)
        )
    )
    return max(cur.rowcount, 0)


async def write_rows(pool: AsyncConnectionPool[Any], rows: Sequence[Row]) -> int:
    """Store `rows` exactly once whatever was stored before; returns how many were new. Raw COPY
    first; on a key conflict (a redelivery, a repeated reading) the staged, conflict-skipping way."""
    if not rows:
        return 0
    async with pool.connection() as conn:
        try:
            async with conn.transaction():
                await copy_rows(conn, rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:
            pass  # rolled back: nothing of this attempt was stored
        async with conn.transaction():
            return await stage_rows(conn, rows)


# --- the service ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StoreStats:
    records: int = 0  # Kafka records handled
    readings: int = 0  # telemetry messages among them
    rows: int = 0  # (device, time, metric) rows written or found already stored
    stored: int = 0  # rows new to the table
    duplicates: int = 0  # rows already there (redelivery, repeated readings)
    staged_batches: int = 0  # batches that took the conflict-skipping way
    skipped: int = 0  # device events and status messages: not readings
    dead_lettered: int = 0


class TelemetryStore(KafkaWorker):
    name = "telemetry-store"
    topic = TELEMETRY
    group_id = "vigil-telemetry-store"
    # Rows per COPY is what makes it fast: a fetch of up to this many messages is one COPY.
    max_records = 5000

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.stats = StoreStats()
        self.partitions = Partitions()

    async def _prepare(self) -> None:
        assert self._settings.database_url
        await migrate(self._settings.database_url)
        async with self._pool.connection() as conn:
            await self.partitions.load(conn)
        await self.partitions.ensure_around_today(self._pool)
        self.spawn(self._maintain_partitions(), "partitions")
        self.spawn(self._retain(), "retention")

    async def _maintain_partitions(self) -> None:
        while True:
            await asyncio.sleep(_PARTITION_REFRESH_S)
            try:
                await self.partitions.ensure_around_today(self._pool)
            except psycopg.Error as exc:  # on-demand creation covers the gap until the next pass
                log.warning("could not create the coming telemetry partitions: %s", exc)

    async def _retain(self) -> None:
        """Retention (vigil/retention.py: old partitions, and old evidence files where this store
        is given VIGIL_EVIDENCE_DIR) every RETENTION_INTERVAL_S. The first pass waits one interval,
        so a restart loop or a deploy does not run a pass per start. Several stores may run: a
        pass that finds another one under way skips."""
        # Imported here: vigil.retention uses this module's partition helpers.
        from vigil.retention import RETENTION_INTERVAL_S, run_retention

        assert self._settings.database_url
        while True:
            await asyncio.sleep(RETENTION_INTERVAL_S)
            try:
                report = await run_retention(self._settings.database_url, self._settings)
            except (psycopg.Error, OSError) as exc:  # the database or the evidence volume is away
                log.warning("retention pass failed (%s); retrying in an hour", exc)
                continue
            for line in report.lines() if report else []:
                log.info("retention: %s", line)

    async def handle(self, records: Sequence[Record]) -> None:
        batch: list[tuple[Record, list[Row]]] = []
        for record in records:
            self.stats.records += 1
            try:
                message = decode_device_message(record.value or b"")
                if not isinstance(message, Telemetry):
                    self.stats.skipped += 1
                    continue
                batch.append((record, readings(message)))
            except InvalidMessage as exc:
                await self._dead_letter(record, exc.reason, str(exc))
        if not batch:
            return
        delay = _RETRY_FIRST_S
        while True:
            try:
                await self._write([rows for _, rows in batch])
                break
            except psycopg.OperationalError as exc:  # includes the pool's timeout: the database is away
                log.warning("database unavailable (%s); retrying the batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
            except psycopg.Error as exc:  # the database refused some data: find it alone
                log.warning("telemetry batch refused (%r); writing message by message", exc)
                await self._write_one_by_one(batch)
                break
        self.stats.readings += len(batch)

    async def _write(self, messages: Sequence[Sequence[Row]]) -> None:
        rows = [row for rows in messages for row in rows]
        await self.partitions.ensure(self._pool, {row[2].date() for row in rows})
        try:
            stored = await write_rows(self._pool, rows)
        except psycopg.errors.CheckViolation:
            # "no partition of relation found for row": a partition was dropped behind our back.
            self.partitions.forget()
            await self.partitions.ensure(self._pool, {row[2].date() for row in rows})
            stored = await write_rows(self._pool, rows)
        self._count(len(rows), stored)

    async def _write_one_by_one(self, batch: Sequence[tuple[Record, Sequence[Row]]]) -> None:
        for record, rows in batch:
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    stored = await stage_rows(conn, rows)
                self._count(len(rows), stored)
            except psycopg.OperationalError:
                raise  # not the message's fault: the service fails and a restart replays the batch
            except psycopg.Error as exc:
                log.warning("telemetry from %s refused: %r", record.key, exc)
                await self._dead_letter(record, "refused_by_store", f"{type(exc).__name__}: {exc}")

    def _count(self, rows: int, stored: int) -> None:
        self.stats.rows += rows
        self.stats.stored += stored
        self.stats.duplicates += rows - stored
        if stored < rows:
            self.stats.staged_batches += 1

    async def _dead_letter(self, record: Record, reason: str, detail: str) -> None:
        self.stats.dead_lettered += 1
        await (await self.dead_letter(record, reason, detail))  # on the broker before the commit


# --- benchmark: `python -m ingest.storage [--rows N]` ----------------------------------------------


async def bench(database_url: str, *, rows: int, batch: int, rounds: int) -> dict[str, float]:
    """Rows per second of four ways of writing the same rows into `telemetry`, in one run:
    `raw` (binary COPY of ready rows straight in, no idempotency: the limit), `store` (the store's
    write path on new rows: that COPY plus its bookkeeping), `staged` (the redelivery path alone:
    temp-table COPY then INSERT … ON CONFLICT DO NOTHING) and `decoded` (the whole of `handle` but
    Kafka: JSON records decoded and validated, rows built, written the store's way). 50 devices ×
    4 metrics, a reading a second. Each round writes fresh rows per way, in rotating order; the
    best round of each counts. Rows are deleted afterwards."""
    from vigil.db import make_pool
    from vigil.events import encode

    await migrate(database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    now_ms = int(now.timestamp()) * 1000
    tag = f"bench{time.time_ns() % 10**9}"
    best: dict[str, float] = {}
    ways = ["raw", "store", "staged", "decoded"]
    async with make_pool(database_url, max_size=2, name="bench-storage") as pool:
        partitions = Partitions()
        async with pool.connection() as conn:
            await partitions.load(conn)
        start = now - timedelta(seconds=rows // 200 + 1)
        await partitions.ensure(
            pool, {start.date() + timedelta(days=d) for d in range((now - start).days + 2)}
        )
        try:
            for n in range(rounds):
                for way in ways[n % len(ways) :] + ways[: n % len(ways)]:
                    device = f"{tag}-{way}-{n}"
                    data: list[Row] = [
                        (
                            f"{device}-{i // 4 % 50}",
                            "bench",
                            now - timedelta(seconds=i // 200),
                            f"m{i % 4}",
                            i / 2,
                        )
                        for i in range(rows)
                    ]
                    messages = [
                        encode(
                            Telemetry(
                                "bench", f"{device}-{m % 50}", "bench", "bench", now_ms - m // 50 * 1000,
                                {f"m{k}": (m * 4 + k) / 2 for k in range(4)}, now_ms,
                            )
                        )
                        for m in range(rows // 4)
                    ]  # fmt: skip
                    started = time.perf_counter()
                    if way == "decoded":
                        for at in range(0, len(messages), batch // 4):
                            decoded = [decode_device_message(m) for m in messages[at : at + batch // 4]]
                            chunk = [
                                r for msg in decoded if isinstance(msg, Telemetry) for r in readings(msg)
                            ]
                            await write_rows(pool, chunk)
                    for at in range(0, rows if way != "decoded" else 0, batch):
                        chunk = data[at : at + batch]
                        if way == "raw":
                            async with pool.connection() as conn, conn.transaction():
                                await copy_rows(conn, chunk)
                        elif way == "store":
                            await write_rows(pool, chunk)
                        else:
                            async with pool.connection() as conn, conn.transaction():
                                await stage_rows(conn, chunk)
                    rate = rows / (time.perf_counter() - started)
                    best[way] = max(best.get(way, 0.0), rate)
        finally:
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM telemetry WHERE device_id LIKE %s", (f"{tag}-%",))
    return best


def _main() -> None:
    parser = argparse.ArgumentParser(description="telemetry write paths against a raw binary COPY")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per way and round")
    parser.add_argument("--batch", type=int, default=5000, help="rows per COPY (the store's batch)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from vigil.infra import Infrastructure
    from vigil.settings import get_settings

    with Infrastructure(get_settings()) as settings:
        assert settings.database_url
        best = asyncio.run(bench(settings.database_url, rows=args.rows, batch=args.batch, rounds=args.rounds))
    raw = best["raw"]
    for way, rate in best.items():
        print(f"{way:>7}: {rate:>10,.0f} rows/s  {rate / raw:6.1%} of raw")


if __name__ == "__main__":
    _main()
