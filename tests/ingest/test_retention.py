"""Retention on the real PostgreSQL: old telemetry partitions go, the readings and evidence files
an open (or recently ended) case needs stay, and a dry run changes nothing. The telemetry tests run
on native daily partitions and on TimescaleDB chunks (`backend`, tests/databases.py) with the same
assertions: the same days dropped, trimmed and kept, the same readings left."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.trace import MAX_MARGIN_S
from ingest import retention
from ingest.partitions import create_partitions, partition_name, partitioning
from ingest.retention import TRACE_MARGIN, run_retention
from shell.cli import build_parser
from tests.databases import NewDatabase
from vigil.db import migrate
from vigil.evidence import EvidenceStore
from vigil.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
DAYS = 30  # both retention periods in these tests
OLD_OPEN = (NOW - timedelta(days=40)).date()  # holds the readings of an open alert, and others
OLD_CLOSED = (NOW - timedelta(days=35)).date()  # only a long-closed alert's and others
RECENT = (NOW - timedelta(days=2)).date()
READINGS_PER_DAY = 144  # one every 10 minutes


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


async def _seed_registry(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES ('ent', 'Noodle House')")
    await conn.execute("INSERT INTO sites (site_id, enterprise_id, name) VALUES ('site', 'ent', 'kitchen')")
    for device in ("dev-open", "dev-closed", "dev-other"):
        await conn.execute(
            "INSERT INTO devices (device_id, enterprise_id, site_id, profile)"
            " VALUES (%s, 'ent', 'site', 'freezer')",
            (device,),
        )


async def _readings(conn: psycopg.AsyncConnection[Any], device: str, day: date) -> None:
    rows = [(device, "ent", _at(day, 0) + timedelta(minutes=10 * i), "temperature", -18.0 + i / 100)
            for i in range(READINGS_PER_DAY)]  # fmt: skip
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO telemetry (device_id, enterprise_id, ts, metric, value) VALUES (%s, %s, %s, %s, %s)",
            rows,
        )


async def _alert(
    conn: psycopg.AsyncConnection[Any],
    alert_id: str,
    *,
    kind: str,
    source: str,
    status: str,
    first_seen: datetime,
    closed_at: datetime | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
        " severity, tier, summary, evidence, detector, window_start, first_seen, last_seen, deadline,"
        " closed_at, created_at, updated_at)"
        " VALUES (%s, 'COLD_CHAIN_FREEZER_WARM', 'ent', 'site', %s, %s, %s, 'major', 2, 'test', %s,"
        " 'test', %s, %s, %s, %s, %s, %s, %s)",
        (alert_id, kind, source, status, Jsonb(evidence or {}), first_seen, first_seen,
         first_seen + timedelta(minutes=30), first_seen + timedelta(days=1), closed_at, first_seen,
         closed_at or first_seen),
    )  # fmt: skip


async def _partition_rows(conn: psycopg.AsyncConnection[Any], day: date) -> dict[str, int] | None:
    """Rows per device of `day`, read through telemetry as every reader does, or None if the day
    has no partition attached (native) or no chunk (TimescaleDB)."""
    start = _at(day, 0)
    if await partitioning(conn) == "native":
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)"
            " AND inhparent = 'telemetry'::regclass)",
            (partition_name(day),),
        )
    else:
        cur = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.chunks WHERE hypertable_name = 'telemetry'"
            " AND range_start = %s AND range_end = %s)",
            (start, start + timedelta(days=1)),
        )
    exists = await cur.fetchone()
    if not (exists and exists[0]):
        return None
    cur = await conn.execute(
        "SELECT device_id, count(*) FROM telemetry WHERE ts >= %s AND ts < %s GROUP BY device_id",
        (start, start + timedelta(days=1)),
    )
    return {device: n for device, n in await cur.fetchall()}


def _aged(path: Path, days: float) -> None:
    t = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


async def _world(database_url: str, evidence_root: Path) -> dict[str, Path]:
    """Three telemetry days and a set of evidence files with alerts referring to some of them."""
    await migrate(database_url)
    store = EvidenceStore(evidence_root)
    files: dict[str, Path] = {}
    for label in ("open_snapshot", "open_frame", "closed_old", "closed_recent", "photo_review", "orphan",
                  "fresh_orphan"):  # fmt: skip
        sha = store.put(f"jpeg bytes of {label}".encode())
        files[label] = store.path(sha)
        if label != "fresh_orphan":
            _aged(files[label], 60)
    sha = {label: path.stem for label, path in files.items()}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _seed_registry(conn)
        await create_partitions(conn, [OLD_OPEN, OLD_CLOSED, RECENT])
        for device in ("dev-open", "dev-other"):
            await _readings(conn, device, OLD_OPEN)
        for device in ("dev-closed", "dev-other"):
            await _readings(conn, device, OLD_CLOSED)
        for device in ("dev-open", "dev-closed", "dev-other"):
            await _readings(conn, device, RECENT)
        if await partitioning(conn) == "timescaledb":  # what its 7-day compression policy has done
            await conn.execute(
                "SELECT compress_chunk(c) FROM show_chunks('telemetry', older_than => %s) c",
                (NOW - timedelta(days=7),),
            )
        # Telemetry: an escalated (still open) cold-chain case on dev-open in the OLD_OPEN day; a
        # case on dev-closed closed long before the cutoff.
        await _alert(conn, "a-dev-open", kind="device", source="dev-open", status="escalated",
                     first_seen=_at(OLD_OPEN, 12))  # fmt: skip
        await _alert(conn, "a-dev-closed", kind="device", source="dev-closed", status="closed",
                     first_seen=_at(OLD_CLOSED, 12), closed_at=NOW - timedelta(days=34))  # fmt: skip
        # Evidence: an open camera case (snapshot on the alert, frame on its violation), a case
        # closed long ago, one closed last week (its proof is kept for the retention period after
        # it ended), and a rectification waiting for review.
        await _alert(conn, "a-cam-open", kind="camera", source="cam-1", status="notified",
                     first_seen=NOW - timedelta(days=61),
                     evidence={"snapshot_sha256": sha["open_snapshot"]})  # fmt: skip
        await conn.execute(
            "INSERT INTO alert_violations (violation_id, state, alert_id, detected_at, evidence)"
            " VALUES ('v-cam-open', 'active', 'a-cam-open', %s, %s)",
            (NOW - timedelta(days=61), Jsonb({"frame_sha256": sha["open_frame"], "boxes": []})),
        )
        await _alert(conn, "a-cam-closed-old", kind="camera", source="cam-2", status="closed",
                     first_seen=NOW - timedelta(days=61), closed_at=NOW - timedelta(days=45),
                     evidence={"snapshot_sha256": sha["closed_old"]})  # fmt: skip
        await _alert(conn, "a-cam-closed-recent", kind="camera", source="cam-3", status="closed",
                     first_seen=NOW - timedelta(days=61), closed_at=NOW - timedelta(days=5),
                     evidence={"snapshot_sha256": sha["closed_recent"]})  # fmt: skip
        await _alert(conn, "a-cam-review", kind="camera", source="cam-4", status="rectification_submitted",
                     first_seen=NOW - timedelta(days=61))  # fmt: skip
        await conn.execute(
            "INSERT INTO rectifications (alert_id, submitted_by, description, photos)"
            " VALUES ('a-cam-review', 'enterprise:ent', 'cleaned', %s)",
            (Jsonb([sha["photo_review"]]),),
        )
    return files


def _settings(evidence_root: Path) -> Settings:
    return Settings(
        telemetry_retention_days=DAYS, evidence_retention_days=DAYS, evidence_dir=str(evidence_root)
    )


async def test_retention_keeps_open_case_evidence_and_drops_the_rest(
    backend: str, new_backend_database: NewDatabase, tmp_path: Path
) -> None:
    url = await new_backend_database()
    root = tmp_path / "evidence"
    files = await _world(url, root)
    settings = _settings(root)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        before = {day: await _partition_rows(conn, day) for day in (OLD_OPEN, OLD_CLOSED, RECENT)}
    assert before[OLD_OPEN] == {"dev-open": READINGS_PER_DAY, "dev-other": READINGS_PER_DAY}

    # Dry run: the plan, and nothing changed.
    plan = await run_retention(url, settings, dry_run=True, now=NOW)
    assert plan is not None
    actions = {p.day: (p.action, p.kept_rows, p.alerts) for p in plan.partitions}
    assert actions == {
        OLD_OPEN: ("trim", READINGS_PER_DAY, ["a-dev-open"]),
        OLD_CLOSED: ("drop", 0, []),
    }
    assert all(p.chunk == (backend == "timescaledb") for p in plan.partitions)
    names = {p.day: p.name for p in plan.partitions}
    assert (plan.evidence_deleted, plan.evidence_kept) == (2, 4)  # closed_old, orphan | the rest
    assert any("would trim" in line for line in plan.lines())
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert {day: await _partition_rows(conn, day) for day in before} == before
    assert all(path.exists() for path in files.values())

    # The pass itself.
    report = await run_retention(url, settings, now=NOW)
    assert report is not None
    assert [(p.name, p.day, p.action) for p in report.partitions] == [
        (names[OLD_OPEN], OLD_OPEN, "trim"),
        (names[OLD_CLOSED], OLD_CLOSED, "drop"),
    ]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert await _partition_rows(conn, OLD_CLOSED) is None
        cur = await conn.execute("SELECT to_regclass(%s)", (names[OLD_CLOSED],))
        assert await cur.fetchone() == (None,)  # dropped, not merely detached
        # The open case's readings stay, in the same partition or chunk, read through the parent
        # table as the trace API reads them; the other device's readings of that day are gone.
        assert await _partition_rows(conn, OLD_OPEN) == {"dev-open": READINGS_PER_DAY}
        cur = await conn.execute(
            "SELECT count(*) FROM telemetry WHERE device_id = 'dev-open' AND ts >= %s AND ts < %s",
            (_at(OLD_OPEN, 0), _at(OLD_OPEN, 0) + timedelta(days=1)),
        )
        assert await cur.fetchone() == (READINGS_PER_DAY,)
        # Still under the parent's primary key (a rebuilt partition; a chunk, compressed or not): a
        # redelivered reading is refused there.
        try:
            await conn.execute(
                "INSERT INTO telemetry VALUES ('dev-open', 'ent', %s, 'temperature', 1)", (_at(OLD_OPEN, 0),)
            )
            raise AssertionError("duplicate reading accepted by the trimmed partition")
        except psycopg.errors.UniqueViolation:
            pass
        assert await _partition_rows(conn, RECENT) == before[RECENT]
    gone = {label for label, path in files.items() if not path.exists()}
    assert gone == {"closed_old", "orphan"}
    assert (report.evidence_deleted, report.evidence_kept) == (2, 4)

    # Again: the trimmed day holds only what is needed, so it is left as it is.
    again = await run_retention(url, settings, now=NOW)
    assert again is not None
    assert [(p.name, p.action, p.kept_rows) for p in again.partitions] == [
        (names[OLD_OPEN], "keep", READINGS_PER_DAY)
    ]

    # Once the case is closed and its retention period after closing has passed, the day goes.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE alerts SET status = 'closed', closed_at = %s WHERE alert_id = 'a-dev-open'",
            (NOW - timedelta(days=DAYS + 1),),
        )
        last = await run_retention(url, settings, now=NOW)
        assert last is not None
        assert [(p.name, p.action) for p in last.partitions] == [(names[OLD_OPEN], "drop")]
        assert await _partition_rows(conn, OLD_OPEN) is None


async def test_retention_zero_keeps_everything_and_one_pass_at_a_time(
    new_backend_database: NewDatabase, tmp_path: Path
) -> None:
    url = await new_backend_database()
    root = tmp_path / "evidence"
    files = await _world(url, root)
    forever = Settings(telemetry_retention_days=0, evidence_retention_days=0, evidence_dir=str(root))
    report = await run_retention(url, forever, now=NOW)
    assert report is not None and report.partitions == [] and report.evidence_deleted == 0
    assert all(path.exists() for path in files.values())

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (retention._RETENTION_LOCK_KEY,))
        assert await run_retention(url, _settings(root), now=NOW) is None
        await conn.execute("SELECT pg_advisory_unlock(%s)", (retention._RETENTION_LOCK_KEY,))
        assert await _partition_rows(conn, OLD_CLOSED) is not None  # the skipped pass did nothing


async def test_cli_dry_run_prints_the_plan(
    new_backend_database: NewDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await new_backend_database()
    root = tmp_path / "evidence"
    files = await _world(url, root)
    plan = await run_retention(url, _settings(root), dry_run=True, now=NOW)
    assert plan is not None
    label = {p.day: p.label for p in plan.partitions}  # a partition's name, or a chunk's with its day
    args = build_parser().parse_args(["retention", "--dry-run"])
    settings = _settings(root).model_copy(update={"database_url": url})
    assert await args.handler(settings, args) == 0
    out = capsys.readouterr().out
    assert f"{label[OLD_CLOSED]}: would drop" in out
    assert f"{label[OLD_OPEN]}: would trim, {READINGS_PER_DAY} reading(s) kept for a-dev-open" in out
    assert "would delete 2 file(s)" in out
    assert all(path.exists() for path in files.values())
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert await _partition_rows(conn, OLD_CLOSED) == {"dev-closed": READINGS_PER_DAY,
                                                           "dev-other": READINGS_PER_DAY}  # fmt: skip


def test_storing_an_old_file_again_makes_it_new(tmp_path: Path) -> None:
    """A new alert may reuse an old picture: storing it again must restart its retention clock,
    or a pass between the store and the alert's commit would delete it."""
    store = EvidenceStore(tmp_path)
    sha = store.put(b"the same picture")
    _aged(store.path(sha), 400)
    assert store.put(b"the same picture") == sha
    assert store.path(sha).stat().st_mtime > (NOW - timedelta(days=1)).timestamp()


def test_kept_window_covers_the_widest_trace() -> None:
    assert timedelta(seconds=MAX_MARGIN_S) <= TRACE_MARGIN
