"""Database fixtures (a fixture plugin of tests/conftest.py).

`new_database`: a fresh, empty database per test on the session's real PostgreSQL server, for tests
that migrate from nothing, restore a dump, or drop whole partitions (which must not touch the
shared database other tests use).

The telemetry backends: tests that take `backend` (or a fixture built on it) run once on native
daily partitions (the session's embedded PostgreSQL) and once on TimescaleDB (a second server, with
the extension built once from ../shared/timescaledb by shell/timescaledb.py and cached between
runs). `backend_url` and `backend_pool` are that backend's shared, migrated database;
`new_backend_database` makes empty ones on it. Where TimescaleDB cannot be had (no source folder,
no compiler) its half is skipped with the reason; a build that fails is an error, not a skip.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from shell.timescaledb import start_postgres, unavailable_reason
from vigil.db import make_pool, migrate
from vigil.settings import Settings

NewDatabase = Callable[[], Awaitable[str]]
BACKENDS = ("native", "timescaledb")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _databases(admin_url: str) -> AsyncIterator[NewDatabase]:
    made: list[str] = []

    async def make() -> str:
        name = f"vigil_t_{uuid.uuid4().hex[:12]}"
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return with_database(admin_url, name)

    yield make
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        for name in made:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            await conn.execute(drop)


@pytest.fixture
async def new_database(settings: Settings) -> AsyncIterator[NewDatabase]:
    """Makes empty databases (returns each one's URL); drops them all afterwards."""
    assert settings.database_url
    async for make in _databases(settings.database_url):
        yield make


@pytest.fixture(scope="session")
def timescaledb_url() -> Iterator[str]:
    """One TimescaleDB server for the whole run (built on first use), its default database
    migrated; skipped, with the reason, where TimescaleDB cannot be built."""
    reason = unavailable_reason(optimised=False)
    if reason is not None:
        pytest.skip(f"TimescaleDB tests skipped: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="vigil-timescaledb-"))
    try:
        # Unoptimised: the tests need the extension's behaviour, and it builds in ~60% of the time.
        server = start_postgres(workdir, optimised=False)
        try:
            asyncio.run(migrate(server.url))
            yield server.url
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The telemetry backend a test runs on: native daily partitions or a TimescaleDB hypertable."""
    name: str = request.param
    return name


@pytest.fixture
def backend_url(backend: str, settings: Settings, request: pytest.FixtureRequest) -> str:
    """The backend's shared, migrated database (tests keep apart by unique ids, as on `settings`)."""
    if backend == "timescaledb":
        url: str = request.getfixturevalue("timescaledb_url")
        return url
    assert settings.database_url
    return settings.database_url


@pytest.fixture
async def backend_pool(backend_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p = make_pool(backend_url, max_size=4)
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def new_backend_database(backend_url: str) -> AsyncIterator[NewDatabase]:
    """As `new_database`, on the test's backend's server."""
    async for make in _databases(backend_url):
        yield make
