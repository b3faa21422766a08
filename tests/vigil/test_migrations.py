"""Migrations are forward-only and safe for data already there.

For every migration N: a fresh database is migrated up to N, filled with representative rows of
every table that exists at N, then migrated to the end; the rows must all be there and the current
code (the API, a lifecycle move) must read and act on them. An applied migration that was edited
is refused, and nothing ships a way down.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from api import create_app
from ingest.partitions import create_partitions
from tests.databases import NewDatabase
from vigil import db
from vigil.db import MigrationError, migrate, migrations
from vigil.keys import create_key
from vigil.settings import Settings

VERSIONS = [version for version, _, _ in migrations()]
TOKEN = "migration-test-operator-token-0123456789"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PHOTO = hashlib.sha256(b"photo").hexdigest()
SNAPSHOT = hashlib.sha256(b"snapshot").hexdigest()

# Rows each seeding step adds, per table, checked after the last migration.
EXPECTED: dict[int, dict[str, int]] = {
    1: {"enterprises": 1, "sites": 1, "devices": 1, "alerts": 2, "alert_violations": 2,
        "alert_audit": 2, "outbox": 2},
    2: {"cameras": 1},
    3: {"staff": 1, "site_handlers": 1, "rectifications": 1, "notices": 1, "follow_up_visits": 1},
    4: {"api_keys": 1, "api_tokens": 1},
    6: {"telemetry": 3},
}  # fmt: skip


async def seed_rows(conn: psycopg.AsyncConnection[Any], version: int) -> None:
    """Representative rows of every table the schema has at `version`, written as the code of
    that time wrote them (only the columns that existed then)."""
    x = conn.execute
    await x("INSERT INTO enterprises (enterprise_id, name) VALUES ('ent', 'Noodle House')")
    await x("INSERT INTO sites (site_id, enterprise_id, name, district) VALUES ('site', 'ent', 'k', 'Xuhui')")
    await x(
        "INSERT INTO devices (device_id, enterprise_id, site_id, profile, attributes)"
        " VALUES ('freezer-1', 'ent', 'site', 'freezer', %s)",
        (Jsonb({"duration_s": 60}),),
    )
    for alert_id, kind, source, status in (
        ("a-device", "device", "freezer-1", "open"),
        ("a-camera", "camera", "cam-1", "notified"),
    ):
        await x(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, evidence, detector, window_start, first_seen, last_seen, deadline)"
            " VALUES (%s, %s, 'ent', 'site', %s, %s, %s, 'major', 2, %s, %s, 'test', %s, %s, %s, %s)",
            (alert_id, "COLD_CHAIN_FREEZER_WARM" if kind == "device" else "KITCHEN_NO_MASK", kind, source,
             status, f"summary of {alert_id}", Jsonb({"snapshot_sha256": SNAPSHOT} if kind == "camera" else
             {"temperature": -5.0}), T0, T0, T0 + timedelta(minutes=20), T0 + timedelta(days=3)),
        )  # fmt: skip
        await x(
            "INSERT INTO alert_violations (violation_id, state, alert_id, detected_at)"
            " VALUES (%s, 'active', %s, %s)",
            (f"v-{alert_id}", alert_id, T0),
        )
        await x(
            "INSERT INTO alert_audit (alert_id, actor, action, to_status)"
            " VALUES (%s, 'alerts', 'opened', %s)",
            (alert_id, status),
        )
        await x(
            "INSERT INTO outbox (alert_id, enterprise_id, channel, payload, delivered_at)"
            " VALUES (%s, 'ent', 'mqtt_notice', %s, %s)",
            (alert_id, Jsonb({"alert_id": alert_id}), T0),
        )
    if version >= 2:
        await x(
            "INSERT INTO cameras (camera_id, enterprise_id, site_id, source, zones)"
            " VALUES ('cam-1', 'ent', 'site', 'rtsp://10.0.0.5/stream', %s)",
            (Jsonb([{"name": "prep", "points": [[0, 0], [1, 0], [1, 1]], "codes": ["KITCHEN_NO_MASK"]}]),),
        )
        await x("UPDATE alert_violations SET evidence = %s", (Jsonb({"snapshot_sha256": SNAPSHOT}),))
    if version >= 3:
        await x("INSERT INTO staff (staff_id, name) VALUES ('wang', 'Wang Wei')")
        await x("INSERT INTO site_handlers (site_id, slot, staff_id) VALUES ('site', 'A', 'wang')")
        await x("UPDATE alerts SET assignee = 'wang', assigned_slot = 'A', leniency = 'first_offence'")
        await x(
            "INSERT INTO rectifications (alert_id, submitted_by, description, photos)"
            " VALUES ('a-camera', 'enterprise:ent', 'masks handed out', %s)",
            (Jsonb([PHOTO]),),
        )
        await x(
            "INSERT INTO notices (notice_id, alert_id, enterprise_id, kind, payload)"
            " VALUES ('n-1', 'a-camera', 'ent', 'opened', %s)",
            (Jsonb({"alert_id": "a-camera"}),),
        )
        await x("UPDATE outbox SET notice_id = 'n-1' WHERE alert_id = 'a-camera'")
        await x(
            "INSERT INTO follow_up_visits (alert_id, site_id, staff_id, due_at) VALUES ('a-device', 'site',"
            " 'wang', %s)",
            (T0 + timedelta(days=30),),
        )
    if version >= 4:
        await x(
            "INSERT INTO api_keys (key_id, secret_sha256, name, role, created_by)"
            " VALUES ('0123456789ab', %s, 'old key', 'operator', 'cli')",
            (hashlib.sha256(b"old key").digest(),),
        )
        await x(
            "INSERT INTO api_tokens (token_sha256, key_id, expires_at) VALUES (%s, '0123456789ab', %s)",
            (hashlib.sha256(b"token").digest(), T0 + timedelta(hours=1)),
        )
    if version >= 5:
        await x("UPDATE alerts SET operator_ack_at = %s, operator_ack_by = 'operator:wang'", (T0,))
    if version >= 6:
        await create_partitions(conn, [T0.date()])
        for i in range(3):
            await x(
                "INSERT INTO telemetry VALUES ('freezer-1', 'ent', %s, 'temperature', %s)",
                (T0 + timedelta(minutes=i), -5.0 + i),
            )


def expected_rows(version: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for step, tables in EXPECTED.items():
        if step <= version:
            counts.update(tables)
    return counts


@pytest.fixture
async def client_for(settings: Settings) -> AsyncIterator[Any]:
    """An API client over a given database, with the operator token."""
    clients: list[Any] = []

    async def make(database_url: str) -> httpx.AsyncClient:
        app = create_app(
            settings.model_copy(update={"database_url": database_url, "api_token": SecretStr(TOKEN)})
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                   headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        clients.append((lifespan, client))
        return client

    yield make
    for lifespan, client in clients:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.mark.parametrize("version", VERSIONS)
async def test_data_written_at_each_migration_survives_the_rest(
    version: int, new_database: NewDatabase, client_for: Any
) -> None:
    url = await new_database()
    applied = await migrate(url, target=version)
    assert len(applied) == version
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await seed_rows(conn, version)
    rest = await migrate(url)
    assert [int(name[:4]) for name in rest] == VERSIONS[version:]

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for table, n in expected_rows(version).items():
            cur = await conn.execute(f"SELECT count(*) FROM {table}")  # table: from the dict above
            assert await cur.fetchone() == (n,), table
        cur = await conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version")
        recorded = await cur.fetchall()
    assert recorded == [(v, db.checksum(sql)) for v, _, sql in migrations()]

    # The current code reads the old rows and acts on them.
    client = await client_for(url)
    r = await client.get("/api/v1/alerts/a-camera")
    assert r.status_code == 200, r.text
    alert = r.json()
    assert (alert["status"], alert["summary"], alert["evidence"]) == (
        "notified", "summary of a-camera", {"snapshot_sha256": SNAPSHOT})  # fmt: skip
    assert [a["action"] for a in alert["audit"]] == ["opened"]
    assert alert["leniency"] == ("first_offence" if version >= 3 else "not_eligible")
    assert [rect["photos"] for rect in alert["rectifications"]] == ([[PHOTO]] if version >= 3 else [])
    assert [n["notice_id"] for n in alert["notices"]] == (["n-1"] if version >= 3 else [])
    r = await client.get("/api/v1/alerts", params={"enterprise_id": "ent"})
    assert r.status_code == 200, r.text
    assert sorted(a["alert_id"] for a in r.json()["items"]) == ["a-camera", "a-device"]
    r = await client.get("/api/v1/alerts/a-device/trace", params={"before_s": 0, "after_s": 0})
    assert r.status_code == 200, r.text
    assert len(r.json()["series"].get("temperature", [])) == (3 if version >= 6 else 0)
    r = await client.post("/api/v1/alerts/a-device/dismiss", json={"reason": "sensor unplugged for cleaning"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["disposition"]) == ("dismissed", "false_alarm")

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        _, supervisor = await create_key(conn, name="sup", role="supervisor", enterprise_id=None,
                                         created_by="test")  # fmt: skip
    r = await client.get("/api/v1/devices", headers={"Authorization": f"Bearer {supervisor}"})
    assert r.status_code == 200, r.text
    assert [(d["device_id"], d["attributes"]) for d in r.json()["items"]] == [
        ("freezer-1", {"duration_s": 60})
    ]


async def test_an_edited_applied_migration_is_refused(
    new_database: NewDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await new_database()
    await migrate(url)
    shipped = migrations()
    edited = [(v, name, sql + "\nCREATE INDEX sneaky ON devices (profile);\n" if v == 3 else sql)
              for v, name, sql in shipped]  # fmt: skip
    monkeypatch.setattr(db, "migrations", lambda: edited)
    with pytest.raises(MigrationError, match=r"0003_lifecycle\.sql was edited"):
        await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass('sneaky')")
        assert await cur.fetchone() == (None,)
    # A CRLF checkout of the same files is the same migrations.
    monkeypatch.setattr(db, "migrations", lambda: [(v, n, s.replace("\n", "\r\n")) for v, n, s in shipped])
    assert await migrate(url) == []


async def test_checksums_are_filled_in_for_databases_migrated_before_them(new_database: NewDatabase) -> None:
    url = await new_database()
    await migrate(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("UPDATE schema_migrations SET checksum = NULL")
    assert await migrate(url) == []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM schema_migrations WHERE checksum IS NULL")
        assert await cur.fetchone() == (0,)


async def test_a_migration_numbered_below_an_applied_one_is_refused(
    new_database: NewDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two branches each added a migration; this database got the higher-numbered one first.
    Applying the lower one now would give it a history no other database has."""
    url = await new_database()
    shipped = migrations()
    monkeypatch.setattr(db, "migrations", lambda: [m for m in shipped if m[0] != 5])
    await migrate(url)
    monkeypatch.setattr(db, "migrations", lambda: shipped)
    with pytest.raises(MigrationError, match=r"0005_operator_ack\.sql are numbered below"):
        await migrate(url)


def test_migrations_are_forward_only_and_numbered_in_order() -> None:
    files = sorted(entry.name for entry in resources.files("vigil").joinpath("migrations").iterdir()
                   if entry.name.endswith(".sql"))  # fmt: skip
    # Every file is a migration the runner applies (a file it skipped would be silently ignored),
    # and none is a way back.
    assert [name for _, name, _ in migrations()] == files
    assert not [name for name in files if any(w in name for w in ("down", "rollback", "revert", "undo"))]
    assert list(range(1, len(VERSIONS) + 1)) == VERSIONS
    for _, name, sql in migrations():
        assert "Forward-only" in sql, f"{name} does not state that it is never edited"
