"""Database plumbing: a connection pool and forward-only, versioned SQL migrations.

Forward-only: there are no down migrations. A change to the schema is a new numbered file; an
applied file is never edited, and the runner enforces it: each applied migration's SHA-256 is
recorded, and a database whose recorded checksum differs from the shipped file is refused (the
schema it has is not the one the code was tested against). Rows applied before checksums were
recorded get the current file's checksum on first sight.
"""

from __future__ import annotations

import hashlib
import logging
import re
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

from vigil.errors import VigilError

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x5649_4749  # "VIGI"


class MigrationError(VigilError):
    """The database's migration history does not match the migrations this code ships."""


def checksum(sql: str) -> str:
    """SHA-256 of a migration's text, line endings normalised (a Windows checkout's CRLF is the
    same migration, not an edited one)."""
    return hashlib.sha256(sql.replace("\r\n", "\n").encode()).hexdigest()


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("vigil").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(database_url: str, *, target: int | None = None) -> list[str]:
    """Apply pending migrations (up to and including version `target`, default all), each in its
    own transaction, under an advisory lock so that services starting together do not race.
    Returns the names applied. Raises MigrationError if an applied migration was edited."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            # The runner's own bookkeeping, so it is created here and not by a migration file:
            # the check below must work before any file runs. Idempotent, cheap (no rewrite).
            await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
            cur = await conn.execute("SELECT version, name, checksum FROM schema_migrations")
            done = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
            shipped = migrations()
            _verify(done, shipped)
            for version, name, sql in shipped:
                if version in done:
                    if done[version][1] is None:  # applied by a runner that kept no checksums
                        await conn.execute(
                            "UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                            (checksum(sql), version),
                        )
                    continue
                if target is not None and version > target:
                    break
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (version, name, checksum(sql)),
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))
    return applied


def _verify(done: dict[int, tuple[str, str | None]], shipped: list[tuple[int, str, str]]) -> None:
    files = {version: (name, checksum(sql)) for version, name, sql in shipped}
    newest = max(done, default=0)
    late = [name for version, name, _ in shipped if version not in done and version < newest]
    if late:
        # Two branches each added a migration: applying the lower number after the higher one
        # would give this database a history no other database has. Renumber it instead.
        raise MigrationError(
            f"pending migration(s) {', '.join(late)} are numbered below the newest applied one "
            f"({done[newest][0]}); give them the next free number"
        )
    for version, (name, recorded) in sorted(done.items()):
        if version not in files:
            # A newer release migrated this database and older code is running (a rolling
            # deploy, a rollback). Forward-only means the newer schema stays; the old code
            # still works if the change was additive, which is what migrations must be.
            log.warning("database has migration %s, which this version of Vigil does not ship", name)
            continue
        file_name, current = files[version]
        if recorded is not None and recorded != current:
            raise MigrationError(
                f"migration {file_name} was edited after it was applied to this database "
                f"(recorded sha256 {recorded[:12]}…, shipped {current[:12]}…); applied migrations "
                "are never edited: restore the original file and put the change in a new one"
            )
        if file_name != name:
            raise MigrationError(
                f"migration {version:04d} is {name} in this database but {file_name} in this code"
            )


def make_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 4, name: str = "vigil", timeout_s: float = 10.0
) -> AsyncConnectionPool:
    # Opened by the caller (`await pool.open(wait=True)`) so that start-up failures surface there.
    # `timeout_s` bounds how long a caller waits for a connection (psycopg's default is 30 s), so a
    # database outage surfaces as an error the services retry, not as a stall.
    return AsyncConnectionPool(
        database_url, min_size=min_size, max_size=max_size, open=False, name=name, timeout=timeout_s
    )
