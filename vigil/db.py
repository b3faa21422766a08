"""Database plumbing: a connection pool and forward-only, versioned SQL migrations."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x5649_4749  # "VIGI"


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("vigil").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations, each in its own transaction, under an advisory lock so that
    services starting together do not race. Returns the names applied."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, name, sql in migrations():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))
    return applied


def make_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 4, name: str = "vigil", timeout_s: float = 10.0
) -> AsyncConnectionPool:
    # Opened by the caller (`await pool.open(wait=True)`) so that start-up failures surface there.
    # `timeout_s` bounds how long a caller waits for a connection (psycopg's default is 30 s), so a
    # database outage surfaces as an error the services retry, not as a stall.
    return AsyncConnectionPool(
        database_url, min_size=min_size, max_size=max_size, open=False, name=name, timeout=timeout_s
    )
