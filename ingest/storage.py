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
ON CONFLICT DO NOTHING`. A first reading per key wins; a repeat is counted and dropped. On
TimescaleDB both hold for chunks already compressed too: it checks the key against the compressed
batches (tests/ingest/test_storage.py redelivers into one).
(`vigil bench --only storage` measures both ways against a raw COPY: benchmarks/storage.py.)

Failures: while the database is down the batch is retried with backoff (nothing is skipped, the
consumer simply stops fetching). A record that is not a device message, or whose readings cannot
be stored, is dead-lettered alone with the reason; the rest of the batch is stored. Device events
and status messages also travel on the topic: they are not readings and are skipped.

Partitions (native partitioning, no TimescaleDB): one per UTC day, named `telemetry_pYYYYMMDD`,
created for yesterday to the day after tomorrow at start and hourly, and on demand for any day a
batch touches (a device replaying its backlog). Creation is `CREATE TABLE` + `ATTACH PARTITION`,
which locks the parent only against other schema changes, not against readers or writers.
Partitions past `VIGIL_TELEMETRY_RETENTION_DAYS` are dropped (or trimmed to the readings an alert
still needs) by the retention pass this service runs hourly (ingest/retention.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from ingest.partitions import TABLE, Partitions
from ingest.retention import RETENTION_INTERVAL_S, run_retention
from vigil.db import migrate
from vigil.errors import InvalidMessage
from vigil.events import Telemetry, decode_device_message
from vigil.settings import Settings
from vigil.topics import TELEMETRY
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

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
# The partitions around today are refreshed this often (ingest/partitions.py).
_PARTITION_REFRESH_S = 3600.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        """Retention (ingest/retention.py: old partitions, and old evidence files where this store
        is given VIGIL_EVIDENCE_DIR) every RETENTION_INTERVAL_S. The first pass waits one interval,
        so a restart loop or a deploy does not run a pass per start. Several stores may run: a
        pass that finds another one under way skips."""
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
