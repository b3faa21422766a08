"""`vigil bench storage` (also `vigil bench --only storage`): the telemetry table on native daily
partitions and on TimescaleDB, side by side in one run, so a bureau can see what TimescaleDB buys.

For each backend, on an embedded server of its own (the plain embedded PostgreSQL; the same
PostgreSQL with TimescaleDB built once from ../shared/timescaledb, shell/timescaledb.py) and in
fresh databases (a configured VIGIL_DATABASE_URL is not touched):

- write paths against a raw binary COPY of the same rows (`bench`, below);
- the three bucketed queries of benchmarks/queries.py, each against a raw read of the same rows;
- the table's size per million readings; with TimescaleDB also after compressing every chunk (what
  its 7-day policy does to older days), and the three queries again on the compressed chunks.

A side-by-side table closes the report. Where TimescaleDB cannot be built its half is reported as
not run, with the reason, and the native half stands.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg import AsyncConnection, sql

from benchmarks.queries import QueryTiming, fill, new_tag, time_queries
from benchmarks.report import COPY_RATIO, Figure, Report, print_report
from ingest.partitions import Partitions
from ingest.storage import Row, copy_rows, readings, stage_rows, write_rows
from vigil.db import make_pool, migrate
from vigil.events import Telemetry, decode_device_message, encode
from vigil.machine import machine
from vigil.progress import Progress
from vigil.settings import Settings

BACKENDS = {"native": "native partitions", "timescaledb": "TimescaleDB"}
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sizes:
    # The report's modest sizes (benchmarks/report.py): about a minute and a half per backend.
    rows: int = 100_000  # rows per write path per round
    batch: int = 5000  # rows per COPY, as the store's fetch
    rounds: int = 5  # best of: a neighbour's burst costs one round, not the figure
    devices: int = 1000  # the query fleet: a week of readings, one every interval_s
    days: int = 7
    interval_s: int = 120


async def bench(
    database_url: str, *, rows: int, batch: int, rounds: int, label: str = "storage"
) -> dict[str, float]:
    """Rows per second of four ways of writing the same rows into `telemetry`, in one run:
    `raw` (binary COPY of ready rows straight in, no idempotency: the limit), `store` (the store's
    write path on new rows: that COPY plus its bookkeeping), `staged` (the redelivery path alone:
    temp-table COPY then INSERT … ON CONFLICT DO NOTHING) and `decoded` (the whole of `handle` but
    Kafka: JSON records decoded and validated, rows built, written the store's way). 50 devices ×
    4 metrics, a reading a second. Each round writes fresh rows per way, in rotating order; the
    best round of each counts. Rows are deleted afterwards."""
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
            with Progress(rounds * len(ways), f"{label}: write paths", unit="runs") as progress:
                for n in range(rounds):
                    for way in ways[n % len(ways) :] + ways[: n % len(ways)]:
                        rate = await _write_once(pool, way, f"{tag}-{way}-{n}", now, now_ms, rows, batch)
                        best[way] = max(best.get(way, 0.0), rate)
                        progress.advance()
        finally:
            async with pool.connection() as conn:
                await conn.execute("DELETE FROM telemetry WHERE device_id LIKE %s", (f"{tag}-%",))
    return best


async def _write_once(
    pool: Any, way: str, device: str, now: datetime, now_ms: int, rows: int, batch: int
) -> float:
    data: list[Row] = [
        (f"{device}-{i // 4 % 50}", "bench", now - timedelta(seconds=i // 200), f"m{i % 4}", i / 2)
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
            chunk = [r for msg in decoded if isinstance(msg, Telemetry) for r in readings(msg)]
            await write_rows(pool, chunk)
    for at in range(0, rows if way != "decoded" else 0, batch):
        part = data[at : at + batch]
        if way == "raw":
            async with pool.connection() as conn, conn.transaction():
                await copy_rows(conn, part)
        elif way == "store":
            await write_rows(pool, part)
        else:
            async with pool.connection() as conn, conn.transaction():
                await stage_rows(conn, part)
    return rows / (time.perf_counter() - started)


# --- both backends -------------------------------------------------------------------------------


@dataclass(slots=True)
class BackendResult:
    backend: str
    version: str  # what ran: "PostgreSQL 18.6", "TimescaleDB 2.29.2 on PostgreSQL 18.6"
    writes: dict[str, float]
    stored: int  # readings the queries ran over
    queries: list[QueryTiming]
    mib_per_million: float
    compressed_mib_per_million: float | None = None  # TimescaleDB, every chunk compressed
    compressed_queries: list[QueryTiming] | None = None
    compress_s: float = 0.0


@asynccontextmanager
async def _server(settings: Settings, backend: str) -> AsyncIterator[str]:
    """An embedded server of the backend's kind, for this run alone; yields its admin URL."""
    from shell.infra import Infrastructure

    infra = Infrastructure(
        settings.model_copy(update={"database_url": None}),
        parts=frozenset({"postgres"}),
        timescaledb=backend == "timescaledb",
    )
    try:
        # A thread: starting TimescaleDB may first build it (about a minute, once).
        url = (await asyncio.to_thread(infra.start)).database_url
        assert url
        yield url
    finally:
        await asyncio.to_thread(infra.stop)


async def _new_database(admin_url: str, purpose: str) -> str:
    name = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
    async with await AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    await migrate(url)
    return url


async def _table_bytes(conn: AsyncConnection[Any], backend: str) -> int:
    """The telemetry table's size on disk, indexes included: its partitions' or its chunks'."""
    if backend == "timescaledb":
        query = "SELECT hypertable_size('telemetry')"
    else:
        query = (
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits"
            " WHERE inhparent = 'telemetry'::regclass"
        )
    row = await (await conn.execute(query)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def measure_backend(admin_url: str, backend: str, sizes: Sizes) -> BackendResult:
    label = f"storage, {BACKENDS[backend]}"
    async with await AsyncConnection.connect(admin_url) as conn:
        row = await (await conn.execute("SELECT split_part(version(), ' ', 2)")).fetchone()
    version = f"PostgreSQL {row[0] if row else '?'}"
    # Fresh databases for each part: the sizes count the query fleet's readings alone, not the
    # write benchmark's deleted rows.
    writes = await bench(
        await _new_database(admin_url, "writes"), rows=sizes.rows, batch=sizes.batch, rounds=sizes.rounds,
        label=label,
    )  # fmt: skip
    url = await _new_database(admin_url, "queries")
    async with make_pool(url, max_size=2, name="bench-queries") as pool:
        tag = new_tag()
        stored = await fill(pool, tag, sizes.devices, sizes.days, sizes.interval_s, label=label)
        queries = await time_queries(pool, tag, devices=sizes.devices, days=sizes.days, label=label)
        # Autocommit: VACUUM cannot run inside a transaction.
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("VACUUM ANALYZE telemetry")
            size = await _table_bytes(conn, backend)
            result = BackendResult(
                backend, version, writes, stored, queries, size / _MIB * 1e6 / max(stored, 1)
            )
            if backend == "timescaledb":
                got = await (await conn.execute("SELECT extversion FROM pg_extension"
                                                " WHERE extname = 'timescaledb'")).fetchone()  # fmt: skip
                result.version = f"TimescaleDB {got[0] if got else '?'} on {version}"
                started = time.perf_counter()
                await conn.execute("SELECT count(compress_chunk(c, if_not_compressed => true))"
                                   " FROM show_chunks('telemetry') c")  # fmt: skip
                result.compress_s = time.perf_counter() - started
                await conn.execute("VACUUM ANALYZE telemetry")
                compressed = await _table_bytes(conn, backend)
        if backend == "timescaledb":
            result.compressed_mib_per_million = compressed / _MIB * 1e6 / max(stored, 1)
            result.compressed_queries = await time_queries(
                pool, tag, devices=sizes.devices, days=sizes.days, label=f"{label}, compressed"
            )
    return result


def figures(r: BackendResult, native: BackendResult | None) -> list[Figure]:
    section = f"storage: {BACKENDS[r.backend]}"
    raw = r.writes["raw"]
    out = [
        Figure(section, "raw binary COPY (limit)", raw, "rows/s", note=r.version),
        # The backend in the name: the summary line names each judged figure without its section.
        Figure(section, f"store write (COPY, idempotent), {BACKENDS[r.backend]}", r.writes["store"], "rows/s",
               raw, "raw COPY", COPY_RATIO, "ratio"),
        Figure(section, "redelivery path (staged, ON CONFLICT)", r.writes["staged"], "rows/s", raw,
               "raw COPY"),
        Figure(section, "decode + rows + store write", r.writes["decoded"], "rows/s", raw, "raw COPY"),
    ]  # fmt: skip
    for t in r.queries:
        note = f"{t.rows:,} buckets from {t.scanned:,} readings of {r.stored:,}"
        out.append(
            Figure(section, t.name, t.query_ms, "ms", t.raw_ms, "raw read of the same rows", note=note)
        )
    for t in r.compressed_queries or []:
        out.append(Figure(section, f"{t.name}, compressed", t.query_ms, "ms", t.raw_ms,
                          "raw read of the same rows"))  # fmt: skip
    out.append(Figure(section, "size per million readings", r.mib_per_million, "MiB",
                      note="table, indexes and TOAST; uncompressed"))  # fmt: skip
    if r.compressed_mib_per_million is not None:
        out.append(Figure(section, "size per million readings, compressed", r.compressed_mib_per_million,
                          "MiB", native.mib_per_million if native else None, "native partitions",
                          note=f"every chunk compressed in {r.compress_s:.1f} s"))  # fmt: skip
    return out


def side_by_side(native: BackendResult, timescale: BackendResult) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}×" if a else ""

    rows = [("store write, rows/s", native.writes["store"], timescale.writes["store"], ",.0f"),
            ("raw COPY, rows/s", native.writes["raw"], timescale.writes["raw"], ",.0f")]  # fmt: skip
    compressed = {c.name: c for c in timescale.compressed_queries or []}
    for n, t in zip(native.queries, timescale.queries, strict=True):
        rows.append((f"{n.name}, ms", n.query_ms, t.query_ms, ",.1f"))
        if t.name in compressed:
            rows.append(("  … on compressed chunks, ms", n.query_ms, compressed[t.name].query_ms, ",.1f"))
    rows.append(("MiB per million readings", native.mib_per_million, timescale.mib_per_million, ",.1f"))
    if timescale.compressed_mib_per_million is not None:
        rows.append(("  … compressed", native.mib_per_million, timescale.compressed_mib_per_million, ",.1f"))
    width = max(len(name) for name, *_ in rows)
    lines = [f"{'':<{width}}  {'native':>12}  {'TimescaleDB':>12}  TimescaleDB / native"]
    for name, a, b, fmt in rows:
        lines.append(f"{name:<{width}}  {format(a, fmt):>12}  {format(b, fmt):>12}  {ratio(a, b):>8}")
    return "\n".join(lines)


async def measure(settings: Settings, sizes: Sizes, report: Report) -> None:
    """Both backends into `report`: figures, section times, errors and the side-by-side table."""
    results: dict[str, BackendResult] = {}
    for i, (backend, name) in enumerate(BACKENDS.items(), 1):
        section = f"storage: {name}"
        print(f"\n[{i}/{len(BACKENDS)}] {section}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            async with _server(settings, backend) as admin_url:
                results[backend] = await measure_backend(admin_url, backend, sizes)
            report.figures += figures(results[backend], results.get("native"))
        except Exception as exc:  # one backend failing (TimescaleDB not buildable) must not cost the other
            report.errors[section] = f"{type(exc).__name__}: {exc}"
        report.sections[section] = time.monotonic() - started
    if len(results) == len(BACKENDS):
        report.extra["native partitions vs TimescaleDB, same sizes, same run"] = side_by_side(
            results["native"], results["timescaledb"]
        )


async def run_storage_bench(settings: Settings, args: argparse.Namespace) -> int:
    d = Sizes()
    sizes = Sizes(
        rows=getattr(args, "rows", d.rows), rounds=getattr(args, "rounds", d.rounds),
        devices=getattr(args, "devices", d.devices), days=getattr(args, "days", d.days),
        interval_s=getattr(args, "interval_s", d.interval_s),
    )  # fmt: skip
    # Every fresh database migrates and gets partitions: pages of such lines would bury the progress.
    for noisy in ("vigil.db", "ingest.partitions", "shell.infra"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    report = Report(machine())
    await measure(settings, sizes, report)
    report.machine["load_at_end"] = os.getloadavg()
    print_report(report)
    path = getattr(args, "json", None)
    if path:
        await asyncio.to_thread(Path(path).write_bytes, report.to_json())
        print(f"report written to {path}")
    return 1 if report.errors else 0
