"""Time-bucketed queries over a week of telemetry for 1,000 devices, each beside a raw read of the
same rows, for `vigil bench`.

The week is generated in the database (`generate_series`, one temperature a device every
`interval_s`): that is set-up, not a measured write (the write path is measured by
`benchmarks.storage.bench`, binary COPY against a raw COPY). The queries are those the API and the
dashboard ask, written with `date_bin()` so that the same SQL runs on native partitions and on a
TimescaleDB hypertable (where `time_bucket()` would be the idiom); buckets are aligned on a
Monday at midnight UTC (the `date_bin` origin), so weekly buckets would start on Mondays:

- one device's 5-minute averages over a day (an alert's sensor trace),
- hourly maxima per device for one enterprise's 50 devices over a week (a compliance chart),
- the whole fleet's daily maxima per device over the week (a bureau-wide scan).

Each one's "raw" is the read it cannot avoid: the same rows fetched (or counted, for the scans)
without bucketing, so the ratio says what the bucketing adds over reading the data at all.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ingest.partitions import Partitions
from vigil.progress import Progress

PER_ENTERPRISE = 50  # devices per enterprise (a district's restaurant chain, a food plant)
REPEATS = 5  # each query this many times, the median counts: one slow run is a neighbour's burst


@dataclass(frozen=True, slots=True)
class QueryTiming:
    name: str
    rows: int  # result rows of the bucketed query
    scanned: int  # readings the query covers
    query_ms: float
    raw_ms: float

    @property
    def ratio(self) -> float:
        """Bucketed time over raw-read time: 1.0 means the bucketing is free."""
        return self.query_ms / self.raw_ms


async def fill(
    pool: AsyncConnectionPool[Any],
    tag: str,
    devices: int,
    days: int,
    interval_s: int,
    *,
    label: str = "storage",
) -> int:
    """`days` of readings up to now for `devices` devices tagged `tag`; returns how many."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    partitions = Partitions()
    async with pool.connection() as conn:
        await partitions.load(conn)
    await partitions.ensure(pool, {(start + timedelta(days=d)).date() for d in range(days + 2)})
    total = 0
    # A device at a time: each statement is a few seconds at most, and the bar moves.
    with Progress(devices, f"{label}: {days} days of readings", unit="devices") as progress:
        for i in range(devices):
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO telemetry (device_id, enterprise_id, ts, metric, value)"
                    " SELECT %s, %s, t, 'temperature', -19 + 3 * sin(extract(epoch FROM t) / 3600 + %s)"
                    " FROM generate_series(%s, %s, make_interval(secs => %s)) AS t",
                    (f"{tag}-d{i:04d}", f"{tag}-e{i // PER_ENTERPRISE}", i, start, end, interval_s),
                )
                total += cur.rowcount
            progress.advance()
    async with pool.connection() as conn:
        await conn.execute("ANALYZE telemetry")
    return total


async def _time(pool: AsyncConnectionPool[Any], sql: str, args: tuple[Any, ...]) -> tuple[float, list[Any]]:
    samples, rows = [], []
    async with pool.connection() as conn:
        await conn.execute(sql, args)  # warm: plan cached, pages in memory, as for a dashboard
        for _ in range(REPEATS):
            started = time.perf_counter()
            rows = await (await conn.execute(sql, args)).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), rows


async def measure_queries(
    pool: AsyncConnectionPool[Any],
    *,
    devices: int = 1000,
    days: int = 7,
    interval_s: int = 300,
    cleanup: bool = True,
) -> tuple[int, list[QueryTiming]]:
    """Fill a week, time the queries; returns the readings stored and the timings. With `cleanup`
    the rows are deleted afterwards, so that a configured database is left as it was (an embedded
    one is thrown away whole: deleting millions of rows first would only cost time)."""
    tag = new_tag()
    stored = await fill(pool, tag, devices, days, interval_s)
    try:
        return stored, await time_queries(pool, tag, devices=devices, days=days)
    finally:
        if cleanup:
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM telemetry WHERE device_id LIKE %s", (f"{tag}-%",))


def new_tag() -> str:
    """A prefix for one run's device ids, so its rows are found (and deleted) by it alone."""
    return f"qbench{time.time_ns() % 10**9}"


async def time_queries(
    pool: AsyncConnectionPool[Any], tag: str, *, devices: int, days: int, label: str = "storage"
) -> list[QueryTiming]:
    """Time the three queries over readings that `fill` stored under `tag`."""
    now = datetime.now(UTC)
    ids = [f"{tag}-d{i:04d}" for i in range(PER_ENTERPRISE)]
    cases = [
        (
            "5-min averages, 1 device, 1 day",
            "SELECT date_bin(%s, ts, TIMESTAMPTZ '2000-01-03+00') AS b, avg(value), min(value), max(value)"
            " FROM telemetry WHERE device_id = %s AND metric = 'temperature' AND ts >= %s AND ts < %s"
            " GROUP BY b ORDER BY b",
            (timedelta(minutes=5), ids[0], now - timedelta(days=1), now),
            "SELECT ts, value FROM telemetry"
            " WHERE device_id = %s AND metric = 'temperature' AND ts >= %s AND ts < %s",
            (ids[0], now - timedelta(days=1), now),
        ),
        (
            f"hourly max per device, {PER_ENTERPRISE} devices, {days} days",
            "SELECT device_id, date_bin(%s, ts, TIMESTAMPTZ '2000-01-03+00') AS b, max(value) FROM telemetry"
            " WHERE device_id = ANY(%s) AND metric = 'temperature' AND ts >= %s GROUP BY 1, 2 ORDER BY 1, 2",
            (timedelta(hours=1), ids, now - timedelta(days=days)),
            "SELECT count(*) FROM telemetry"
            " WHERE device_id = ANY(%s) AND metric = 'temperature' AND ts >= %s",
            (ids, now - timedelta(days=days)),
        ),
        (
            f"daily max per device, {devices:,} devices, {days} days",
            "SELECT device_id, date_bin(%s, ts, TIMESTAMPTZ '2000-01-03+00') AS b, max(value) FROM telemetry"
            " WHERE device_id LIKE %s AND ts >= %s GROUP BY 1, 2",
            (timedelta(days=1), f"{tag}-%", now - timedelta(days=days)),
            "SELECT count(*) FROM telemetry WHERE device_id LIKE %s AND ts >= %s",
            (f"{tag}-%", now - timedelta(days=days)),
        ),
    ]
    timings = []
    with Progress(len(cases), f"{label}: bucketed queries", unit="queries") as progress:
        for name, query, args, raw, raw_args in cases:
            query_ms, rows = await _time(pool, query, args)
            raw_ms, raw_rows = await _time(pool, raw, raw_args)
            scanned = len(raw_rows) if raw.startswith("SELECT ts") else int(raw_rows[0][0])
            timings.append(QueryTiming(name, len(rows), scanned, query_ms, raw_ms))
            progress.advance()
    return timings
