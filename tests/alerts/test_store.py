"""The alert store on a real PostgreSQL: idempotency, one open alert per source, outbox, audit."""

from __future__ import annotations

import psycopg
import pytest

from alerts.store import apply_violation
from vigil.events import Violation, violation_id

T0 = 1_763_000_000_000


def violation(uid: str, *, window: int = T0, state: str = "active", at: int = T0 + 1000, sev: str = "major"):
    source = f"freezer-{uid}"
    return Violation(
        violation_id=violation_id("device", source, "COLD_CHAIN_FREEZER_WARM", window),
        code="COLD_CHAIN_FREEZER_WARM",
        state=state,  # type: ignore[arg-type]
        enterprise_id=f"ent-{uid}",
        site_id=f"site-{uid}",
        source_kind="device",
        source_id=source,
        window_start=window,
        detected_at=at,
        severity=sev,  # type: ignore[arg-type]
        detector="test",
        summary="too warm",
        evidence={"value": -5.0},
    )


async def apply(pool, v: Violation) -> str | None:
    async with pool.connection() as conn, conn.transaction():
        return await apply_violation(conn, v)


async def rows(pool, sql: str, *args: object) -> list[tuple]:
    async with pool.connection() as conn:
        return await (await conn.execute(sql, args)).fetchall()


async def test_opening_writes_alert_audit_and_both_outbox_rows(pool, uid):
    v = violation(uid)
    assert await apply(pool, v) == "opened"
    [alert] = await rows(
        pool, "SELECT alert_id, status, tier, occurrences FROM alerts WHERE enterprise_id=%s", v.enterprise_id
    )
    assert alert == (v.violation_id, "open", 2, 1)
    outbox = await rows(
        pool, "SELECT channel, payload FROM outbox WHERE alert_id=%s ORDER BY outbox_id", v.violation_id
    )
    assert [c for c, _ in outbox] == ["alert_stream", "mqtt_notice"]
    notice = outbox[1][1]
    assert notice["name_zh"] == "冷冻库温度高于-18℃" and notice["notice_id"] == f"{v.violation_id}:opened"
    audit = await rows(
        pool, "SELECT actor, action, to_status FROM alert_audit WHERE alert_id=%s", v.violation_id
    )
    assert audit == [("detector:test", "opened", "open")]


async def test_replayed_violation_changes_nothing(pool, uid):
    v = violation(uid)
    assert await apply(pool, v) == "opened"
    assert await apply(pool, v) is None
    assert await rows(pool, "SELECT count(*) FROM outbox WHERE alert_id=%s", v.violation_id) == [(2,)]
    assert await rows(pool, "SELECT occurrences FROM alerts WHERE alert_id=%s", v.violation_id) == [(1,)]


async def test_new_episode_of_an_open_alert_repeats_it_instead_of_opening_another(pool, uid):
    first, again = violation(uid), violation(uid, window=T0 + 3_600_000, at=T0 + 3_700_000, sev="critical")
    assert await apply(pool, first) == "opened"
    assert await apply(pool, again) == "repeated"
    assert await apply(pool, again) is None
    [(count, occurrences, severity)] = await rows(
        pool,
        "SELECT count(*), max(occurrences), max(severity) FROM alerts WHERE enterprise_id=%s",
        first.enterprise_id,
    )
    assert (count, occurrences, severity) == (1, 2, "critical")


async def test_cleared_sets_cleared_at_but_keeps_the_alert_open(pool, uid):
    v = violation(uid)
    await apply(pool, v)
    assert await apply(pool, violation(uid, state="cleared", at=T0 + 60_000)) == "cleared"
    [(status, cleared)] = await rows(
        pool, "SELECT status, cleared_at FROM alerts WHERE alert_id=%s", v.violation_id
    )
    assert status == "open" and cleared is not None


async def test_clear_of_an_unknown_violation_is_a_no_op(pool, uid):
    assert await apply(pool, violation(uid, state="cleared")) is None


async def test_audit_trail_is_append_only(pool, uid):
    v = violation(uid)
    await apply(pool, v)
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            await conn.execute(
                "UPDATE alert_audit SET reason='rewritten' WHERE alert_id=%s", (v.violation_id,)
            )
