"""Telemetry write paths against a raw binary COPY of the same rows (`vigil bench --only storage`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ingest.partitions import Partitions
from ingest.storage import Row, copy_rows, readings, stage_rows, write_rows
from vigil.db import make_pool, migrate
from vigil.events import Telemetry, decode_device_message, encode


async def bench(database_url: str, *, rows: int, batch: int, rounds: int) -> dict[str, float]:
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
