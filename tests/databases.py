"""`new_database` (a fixture plugin of tests/conftest.py): a fresh, empty database per test on
the session's real PostgreSQL server, for tests that migrate from nothing, restore a dump, or drop
whole partitions (which must not touch the shared database other tests use)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from vigil.settings import Settings

NewDatabase = Callable[[], Awaitable[str]]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def new_database(settings: Settings) -> AsyncIterator[NewDatabase]:
    """Makes empty databases (returns each one's URL); drops them all afterwards."""
    assert settings.database_url
    admin_url = settings.database_url
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
