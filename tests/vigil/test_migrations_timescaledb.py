"""The migrations on a real TimescaleDB (tests/databases.py builds it): the same checks as
tests/vigil/test_migrations.py, where they run on the plain embedded PostgreSQL. For every migration
N, a database is migrated up to N, filled with rows of every table it has, then migrated to the end
— 0006 turning `telemetry` into a compressed hypertable in a database that already holds data, or
receiving readings after it did — and the rows must all be there and the current code must act on
them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from ingest.partitions import partitioning
from tests.databases import NewDatabase
from tests.vigil import test_migrations as plain
from tests.vigil.test_migrations import client_for  # noqa: F401  (a fixture, used by name)
from vigil.db import migrate

pytestmark = pytest.mark.parametrize("backend", ["timescaledb"], indirect=True)


@pytest.mark.parametrize("version", plain.VERSIONS)
async def test_data_written_at_each_migration_survives_the_rest_on_timescaledb(
    version: int,
    new_backend_database: NewDatabase,
    client_for: Any,  # noqa: F811
) -> None:
    await plain.test_data_written_at_each_migration_survives_the_rest(
        version, new_backend_database, client_for
    )


async def test_telemetry_is_a_compressed_hypertable_with_its_policy(
    new_backend_database: NewDatabase,
) -> None:
    url = await new_backend_database()
    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert await partitioning(conn) == "timescaledb"
        cur = await conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'telemetry'"
        )
        assert await cur.fetchone() == (True,)
        cur = await conn.execute(
            "SELECT attname, segmentby_column_index, orderby_column_index"
            " FROM timescaledb_information.compression_settings WHERE hypertable_name = 'telemetry'"
            " ORDER BY attname"
        )
        assert await cur.fetchall() == [("device_id", 1, None), ("metric", None, 2), ("ts", None, 1)]
        cur = await conn.execute(
            "SELECT proc_name, config->>'compress_after' FROM timescaledb_information.jobs"
            " WHERE hypertable_name = 'telemetry'"
        )
        assert await cur.fetchall() == [("policy_compression", "7 days")]
        cur = await conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'telemetry'"
        )
        assert await cur.fetchall() == [(timedelta(days=1),)]  # one-day chunks
    assert await migrate(url) == []  # and a second run has nothing to do
