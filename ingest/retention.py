"""Retention: old telemetry and old evidence files go, evidence a case still needs stays.

Run by `vigil retention [--dry-run]` and hourly by the telemetry store. Both halves keep what an
alert *still needs*: an alert that is not closed or dismissed, or one that ended (closed_at, or
its last update) less than the retention period ago. The second half of that rule matters: a case
closed yesterday may be appealed or reviewed tomorrow, and its proof must not vanish the day it
closes just because the proof itself is old.

Telemetry (`VIGIL_TELEMETRY_RETENTION_DAYS`). Readings live in daily partitions
(`telemetry_pYYYYMMDD`, ingest/partitions.py). A day whose end is older than the cutoff is dropped
whole — a catalogue change, no row-by-row DELETE, no bloat. If a device alert that is still needed
has its window (first_seen − 1 day to cleared_at/last_seen + 1 day: the widest trace the API can
ask for) in that day, the partition is *trimmed* instead: in one transaction a new table receives
only those devices' readings in those windows, the old partition is detached and dropped, and the
new one is attached under the same name and range. We keep the partition rather than copying the
rows to a side table because then every reader — the trace API, the detector's replay, ad-hoc SQL
— finds the evidence where it always was, with no UNION to remember; and we trim it because
keeping a whole day of every device for one open alert would let a few long-running cases hold
the whole table. A trimmed partition is left alone while it holds only needed rows and dropped once
no alert needs it. Partition DDL takes the telemetry store's partition lock, so it never races
the store's creation of a partition, and waits at most a few seconds for readers (then the day is
retried on the next pass).

With TimescaleDB the table is a hypertable in one-day chunks, and the same rule is applied chunk by
chunk: an expired chunk no needed window touches is dropped whole (`drop_chunks`, bounded to that
one chunk); one that holds a needed alert's readings keeps that alert's device(s) and loses every
other device's readings (`DELETE … WHERE device_id = ANY(…)`: device_id is the compression segment,
so on a compressed chunk TimescaleDB deletes whole compressed batches without decompressing them).
The kept device keeps its whole chunk, not only its window: at most a day more than needed, never
less, and no decompression of the batches it keeps. TimescaleDB's own retention policy
(`add_retention_policy`) is deliberately not used: it drops by age alone, evidence or not. (Before
this was run on a real TimescaleDB, the hypertable branch dropped every chunk older than the older
of the cutoff and the earliest needed window: one long-open case kept the whole table.)

Evidence (`VIGIL_EVIDENCE_RETENTION_DAYS`). Snapshots, frames and rectification photos are files
named by their SHA-256 (vigil/evidence.py), with no row of their own: an alert refers to them from
its evidence, its violations' evidence and its rectifications' photos. A file older than the
cutoff (its mtime; storing the same bytes again refreshes it) is deleted unless a needed alert, or
a rectification not yet decided, refers to its hash anywhere in those documents. The file is
checked again just before it is unlinked, so one re-stored meanwhile (a new alert with the same
picture) is kept. The hash stays on the alert after the file is gone: the record still says what
the proof was; the API answers 404 for the image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from ingest.partitions import DDL_LOCK_TIMEOUT, PARTITION_LOCK_KEY, TABLE, Chunk, chunks, partitioning
from vigil.evidence import SHA256_PATTERN
from vigil.settings import Settings

log = logging.getLogger(__name__)

# Readings kept around a needed alert's window: the trace API's widest margins (api/trace.py
# MAX_MARGIN_S, one day before first_seen and one after the end), so any trace it can draw is whole.
TRACE_MARGIN = timedelta(days=1)
# One retention pass at a time across every process (session-level, on the pass's own connection):
# two passes would only race to delete the same files.
_RETENTION_LOCK_KEY = 0x5649_4752  # "VIGR"
_PARTITION = re.compile(rf"^{TABLE}_p(\d{{8}})$")
# How often the telemetry store runs a pass. Hourly: retention is counted in days, so a partition
# or a file goes at most an hour after its term (a few per cent of a day), and a pass that finds
# nothing expired costs a catalogue query, one query over the alerts and a scan of the evidence
# directory's names and mtimes.
RETENTION_INTERVAL_S = 3600.0

# An alert whose evidence is still needed: not ended, or ended within the retention period.
_NEEDED = sql.SQL("(status NOT IN ('closed', 'dismissed') OR COALESCE(closed_at, updated_at) >= %(cutoff)s)")
# Every SHA-256-looking string anywhere in an evidence document, as text: new evidence keys are
# protected without this query knowing their names.
_HASHES = (
    'jsonb_path_query({}, \'strict $.** ? (@.type() == "string" && @ like_regex "^[0-9a-f]{{64}}$")\')'
    " #>> '{{}}'"
)
_EVIDENCE_NEEDED = sql.SQL(
    "WITH needed AS (SELECT alert_id, evidence FROM alerts WHERE {needed})"
    " SELECT {a} FROM needed"
    " UNION SELECT {v} FROM alert_violations v JOIN needed USING (alert_id)"
    " UNION SELECT {r} FROM rectifications r"
    " WHERE r.decision IS NULL OR r.alert_id IN (SELECT alert_id FROM needed)"
).format(
    needed=_NEEDED,
    a=sql.SQL(_HASHES).format(sql.Identifier("evidence")),
    v=sql.SQL(_HASHES).format(sql.Identifier("v", "evidence")),
    r=sql.SQL(_HASHES).format(sql.Identifier("r", "photos")),
)
_WINDOWS_NEEDED = sql.SQL(
    "SELECT alert_id, source_id, first_seen - %(margin)s, COALESCE(cleared_at, last_seen) + %(margin)s"
    " FROM alerts WHERE source_kind = 'device' AND {}"
).format(_NEEDED)


@dataclass(frozen=True, slots=True)
class Window:
    alert_id: str
    device_id: str
    start: datetime
    end: datetime


@dataclass(slots=True)
class PartitionAction:
    name: str  # a daily partition, or a TimescaleDB chunk (schema-qualified)
    day: date
    # drop: no needed readings; trim: rebuilt with only the needed readings (a chunk: with only the
    # needed devices' readings); keep: it already holds only those; busy: its lock could not be had
    # in time, retried next pass.
    action: Literal["drop", "trim", "keep", "busy"]
    kept_rows: int = 0
    alerts: list[str] = field(default_factory=list)
    chunk: bool = False

    @property
    def label(self) -> str:
        # A partition's name says its day; a chunk's (_hyper_1_42_chunk) does not.
        return f"{self.name} ({self.day:%Y-%m-%d})" if self.chunk else self.name


@dataclass(slots=True)
class RetentionReport:
    dry_run: bool
    telemetry_cutoff: datetime | None = None
    partitioning: str = ""
    partitions: list[PartitionAction] = field(default_factory=list)  # or chunks, with TimescaleDB
    evidence_cutoff: datetime | None = None
    evidence_deleted: int = 0
    evidence_bytes: int = 0
    evidence_kept: int = 0  # old files kept because a needed alert refers to them

    def lines(self) -> list[str]:
        verb = "would " if self.dry_run else ""
        out: list[str] = []
        if self.telemetry_cutoff is None:
            out.append("telemetry: kept for ever (VIGIL_TELEMETRY_RETENTION_DAYS=0)")
        else:
            cutoff = f"{self.telemetry_cutoff:%Y-%m-%d %H:%M} UTC"
            out.append(f"telemetry older than {cutoff} ({self.partitioning}):")
            for p in self.partitions:
                why = f" for {', '.join(p.alerts)}" if p.alerts else ""
                kept = f", {p.kept_rows} reading(s) kept{why}" if p.action in ("trim", "keep") else ""
                out.append(f"  {p.label}: {verb if p.action != 'busy' else ''}{p.action}{kept}")
            if not self.partitions:
                out.append("  nothing to remove")
        if self.evidence_cutoff is None:
            out.append("evidence: kept for ever (VIGIL_EVIDENCE_RETENTION_DAYS=0, or no VIGIL_EVIDENCE_DIR)")
        else:
            out.append(
                f"evidence older than {self.evidence_cutoff:%Y-%m-%d %H:%M} UTC: {verb}delete"
                f" {self.evidence_deleted} file(s), {self.evidence_bytes} bytes; {self.evidence_kept}"
                " kept for alerts that still need them"
            )
        return out


async def run_retention(
    database_url: str, settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> RetentionReport | None:
    """One retention pass over telemetry and evidence; None if another pass holds the lock."""
    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run)
    # Its own autocommit connection: each partition change is its own short transaction, and the
    # session-level lock below must not sit inside one.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_RETENTION_LOCK_KEY,))
        got = await cur.fetchone()
        if not (got and got[0]):
            log.info("another retention pass is running; skipping this one")
            return None
        try:
            if settings.telemetry_retention_days > 0:
                report.telemetry_cutoff = now - timedelta(days=settings.telemetry_retention_days)
                await _telemetry(conn, report, report.telemetry_cutoff, dry_run=dry_run)
            if settings.evidence_retention_days > 0 and settings.evidence_dir is not None:
                report.evidence_cutoff = now - timedelta(days=settings.evidence_retention_days)
                await _evidence(conn, Path(settings.evidence_dir), report, report.evidence_cutoff, dry_run)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_RETENTION_LOCK_KEY,))
    return report


# --- telemetry -----------------------------------------------------------------------------------


async def _telemetry(
    conn: psycopg.AsyncConnection[Any], report: RetentionReport, cutoff: datetime, *, dry_run: bool
) -> None:
    report.partitioning = kind = await partitioning(conn)
    cur = await conn.execute(_WINDOWS_NEEDED, {"cutoff": cutoff, "margin": TRACE_MARGIN})
    windows = [Window(*row) for row in await cur.fetchall()]
    if kind == "native":
        for name, day in await _expired_partitions(conn, cutoff):
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            mine = [w for w in windows if w.start < end and w.end >= start]
            report.partitions.append(await _retire_partition(conn, name, day, mine, dry_run=dry_run))
    elif kind == "timescaledb":
        for chunk in await chunks(conn, cutoff):
            mine = [w for w in windows if w.start < chunk.end and w.end >= chunk.start]
            report.partitions.append(await _retire_chunk(conn, chunk, mine, dry_run=dry_run))
    else:
        log.warning("telemetry is neither partitioned nor a hypertable; retention leaves it alone")


async def _expired_partitions(conn: psycopg.AsyncConnection[Any], cutoff: datetime) -> list[tuple[str, date]]:
    """Daily partitions whose whole day ends at or before `cutoff`, oldest first."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s)",
        (TABLE,),
    )
    expired = []
    for (name,) in await cur.fetchall():
        match = _PARTITION.match(name)
        if match is None:
            log.warning("telemetry partition %s is not one of ours (telemetry_pYYYYMMDD); left alone", name)
            continue
        day = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
        if day + timedelta(days=1) <= cutoff:
            expired.append((name, day.date()))
    return sorted(expired, key=lambda item: item[1])


def _covered(alias: str) -> sql.Composed:
    """`alias` is a reading inside one of the windows passed as %(dev)s, %(lo)s, %(hi)s arrays.
    By device alone (not enterprise): a superset of what the trace shows, never less."""
    return sql.SQL(
        "EXISTS (SELECT 1 FROM unnest(%(dev)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[])"
        " AS w(device_id, lo, hi) WHERE {a}.device_id = w.device_id AND {a}.ts >= w.lo AND {a}.ts <= w.hi)"
    ).format(a=sql.Identifier(alias))


async def _retire_partition(
    conn: psycopg.AsyncConnection[Any], name: str, day: date, windows: list[Window], *, dry_run: bool
) -> PartitionAction:
    action = PartitionAction(name, day, "drop", alerts=sorted({w.alert_id for w in windows}))
    params = {
        "dev": [w.device_id for w in windows],
        "lo": [w.start for w in windows],
        "hi": [w.end for w in windows],
    }
    part = sql.Identifier(name)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
            await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            if windows:
                cur = await conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {} t WHERE NOT {})").format(part, _covered("t")),
                    params,
                )
                extra = await cur.fetchone()
                cur = await conn.execute(
                    sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(part, _covered("t")), params
                )
                counted = await cur.fetchone()
                action.kept_rows = counted[0] if counted else 0
                if action.kept_rows == 0:  # the needed windows hold no readings here
                    action.alerts = []
                else:
                    action.action = "trim" if extra and extra[0] else "keep"
            if dry_run or action.action == "keep":
                return action
            if action.action == "drop":
                # Takes the parent's ACCESS EXCLUSIVE lock until commit: a moment, as this
                # transaction does nothing else (lock_timeout bounds the wait for readers).
                await conn.execute(sql.SQL("DROP TABLE {}").format(part))
                log.info("dropped telemetry partition %s", name)
                return action
            await _trim(conn, name, day, params)
            log.info("trimmed telemetry partition %s to %d reading(s) for %s", name, action.kept_rows,
                     ", ".join(action.alerts))  # fmt: skip
    except psycopg.errors.LockNotAvailable:
        log.warning("telemetry partition %s is busy; retention retries it on the next pass", name)
        action.action = "busy"
    return action


async def _trim(conn: psycopg.AsyncConnection[Any], name: str, day: date, params: dict[str, Any]) -> None:
    """In the caller's transaction: replace partition `name` by one with only the covered rows."""
    part, keep, parent = sql.Identifier(name), sql.Identifier(f"{name}_keep"), sql.Identifier(TABLE)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    await conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(keep, parent)
    )
    await conn.execute(
        sql.SQL("INSERT INTO {} SELECT t.* FROM {} t WHERE {}").format(keep, part, _covered("t")), params
    )
    # Dropping a partition detaches it; no one sees the day without its readings, as the whole
    # swap commits at once.
    await conn.execute(sql.SQL("DROP TABLE {}").format(part))
    await conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(keep, part))
    # ATTACH builds the primary-key index on it and checks the range: the same shape as a
    # partition the store creates.
    await conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            parent, part, sql.Literal(start), sql.Literal(start + timedelta(days=1))
        )
    )


async def _retire_chunk(
    conn: psycopg.AsyncConnection[Any], chunk: Chunk, windows: list[Window], *, dry_run: bool
) -> PartitionAction:
    """A TimescaleDB chunk: dropped whole, trimmed to the needed devices, or kept (see the top)."""
    action = PartitionAction(chunk.name, chunk.start.astimezone(UTC).date(), "drop", chunk=True,
                             alerts=sorted({w.alert_id for w in windows}))  # fmt: skip
    needed = sorted({w.device_id for w in windows})
    name = chunk.identifier
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK_KEY,))
            await conn.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            others: list[str] = []
            if needed:
                cur = await conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE device_id = ANY(%s)").format(name), (needed,)
                )
                counted = await cur.fetchone()
                action.kept_rows = counted[0] if counted else 0
                if action.kept_rows == 0:  # the needed devices have no readings here
                    action.alerts = []
                else:
                    # DISTINCT over the segment column: read from the compressed batches' headers.
                    cur = await conn.execute(
                        sql.SQL("SELECT DISTINCT device_id FROM {} WHERE device_id <> ALL(%s)").format(name),
                        (needed,),
                    )
                    others = [row[0] for row in await cur.fetchall()]
                    action.action = "trim" if others else "keep"
            if dry_run or action.action == "keep":
                return action
            if action.action == "drop":
                await conn.execute(
                    sql.SQL("SELECT drop_chunks({}, older_than => %s, newer_than => %s)").format(
                        sql.Literal(TABLE)
                    ),
                    (chunk.end, chunk.start),
                )
                log.info("dropped telemetry chunk %s", action.label)
                return action
            # `= ANY` on the segment column: whole compressed batches go, none is decompressed.
            await conn.execute(sql.SQL("DELETE FROM {} WHERE device_id = ANY(%s)").format(name), (others,))
            log.info("trimmed telemetry chunk %s to %d reading(s) for %s", action.label, action.kept_rows,
                     ", ".join(action.alerts))  # fmt: skip
    except psycopg.errors.LockNotAvailable:
        log.warning("telemetry chunk %s is busy; retention retries it on the next pass", action.label)
        action.action = "busy"
    return action


# --- evidence ------------------------------------------------------------------------------------


def _old_files(root: Path, cutoff_s: float) -> Iterator[tuple[Path, str, int]]:
    """(path, sha256 or '' for a leftover temp file, size) of files under `root`'s fan-out
    directories last modified before `cutoff_s`."""
    for fan in os.scandir(root):
        if not (fan.is_dir(follow_symlinks=False) and len(fan.name) == 2):
            continue
        for entry in os.scandir(fan.path):
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            if stat.st_mtime >= cutoff_s:
                continue
            # Snapshots (.jpg) and event clips (.webm) alike: same naming, same retention.
            stem, dot, suffix = entry.name.partition(".")
            if dot and suffix in ("jpg", "webm") and SHA256_PATTERN.fullmatch(stem):
                yield Path(entry.path), stem, stat.st_size
            elif entry.name.startswith(".incoming-"):  # a write cut short by a crash: never referenced
                yield Path(entry.path), "", stat.st_size


def _delete_if_still_old(path: Path, cutoff_s: float) -> bool:
    try:
        if path.stat().st_mtime >= cutoff_s:  # stored again since the scan: a new alert uses it
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


async def _evidence(
    conn: psycopg.AsyncConnection[Any], root: Path, report: RetentionReport, cutoff: datetime, dry_run: bool
) -> None:
    cutoff_s = cutoff.timestamp()
    old = await asyncio.to_thread(lambda: list(_old_files(root, cutoff_s)) if root.is_dir() else [])
    if not old:
        return
    # Asked only when there is something old: the query reads every needed alert's documents.
    cur = await conn.execute(_EVIDENCE_NEEDED, {"cutoff": cutoff})
    needed = {row[0] for row in await cur.fetchall()}
    for path, sha, size in old:
        if sha and sha in needed:
            report.evidence_kept += 1
            continue
        if dry_run or await asyncio.to_thread(_delete_if_still_old, path, cutoff_s):
            report.evidence_deleted += 1
            report.evidence_bytes += size
    if not dry_run and report.evidence_deleted:
        log.info("deleted %d evidence file(s) older than %s", report.evidence_deleted, cutoff)
