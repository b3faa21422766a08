"""The telemetry table's daily partitions: which exist, creating the missing ones, and the lock
that keeps the telemetry store (ingest/storage.py) and retention (ingest/retention.py) from
changing the table's schema at the same time.

Native partitioning (no TimescaleDB): one partition per UTC day, named `telemetry_pYYYYMMDD`. With
TimescaleDB the table is a hypertable in one-day chunks that TimescaleDB creates as rows arrive;
`chunks` lists them for retention.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

TABLE = "telemetry"
Partitioning = Literal["native", "timescaledb", "none"]

# Taken in the transaction that changes partitions, so two stores (or a store and a retention
# pass) never race to create or drop one.
PARTITION_LOCK_KEY = 0x5649_4754  # "VIGT"
# Schema changes wait at most this long for a lock (a long trace query holds the parent table);
# then the change is retried, instead of queueing every reader and writer behind it.
DDL_LOCK_TIMEOUT = "5s"
# Partitions exist from this many days back to this many ahead of today.
_PARTITIONS_BEHIND, _PARTITIONS_AHEAD = 1, 2


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
    if not row[1]:
        return "none"
    # The extension alone does not make the table a hypertable (it may have been installed after
    # the table was made), and chunk functions on a plain table fail. Asked apart: this catalogue
    # view exists only where the extension does.
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE format('%%I.%%I', hypertable_schema, hypertable_name)::regclass = to_regclass(%s))",
        (TABLE,),
    )
    row = await cur.fetchone()
    return "timescaledb" if row and row[0] else "none"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A TimescaleDB chunk of the telemetry hypertable: where it is and its time range."""

    schema: str
    table: str
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)


async def chunks(conn: psycopg.AsyncConnection[Any], ending_by: datetime) -> list[Chunk]:
    """The hypertable's chunks whose whole range ends at or before `ending_by`, oldest first."""
    cur = await conn.execute(
        "SELECT chunk_schema, chunk_name, range_start, range_end"
        " FROM timescaledb_information.chunks"
        " WHERE format('%%I.%%I', hypertable_schema, hypertable_name)::regclass = to_regclass(%s)"
        " AND range_end <= %s ORDER BY range_start",
        (TABLE, ending_by),
    )
    return [Chunk(*row) for row in await cur.fetchall()]


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


async def create_partitions(conn: psycopg.AsyncConnection[Any], days: Iterable[date]) -> list[str]:
    """Create the daily partitions of `days` that do not exist yet; returns the names created.
    Commits on its own (one short transaction). Nothing where telemetry is not natively partitioned:
    a hypertable makes its own chunks, and attaching a table to it would fail."""
    created: list[str] = []
    async with conn.transaction():
        if await partitioning(conn) != "native":
            return created
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
        await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
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
