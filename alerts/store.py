"""Applying a violation to the alert store, idempotently, in the caller's transaction.

Rules:
- a (violation id, state) pair is applied at most once (`alert_violations` remembers it), so a
  replayed Kafka message changes nothing;
- one open alert per source and code: a new violation for a source that already has one updates
  it (count, last seen, evidence) instead of opening another;
- every change writes an audit row and its outbox rows in the same transaction, so a notice can
  never be lost between "alert stored" and "notice sent".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from vigil.catalogue import SEVERITIES, violation_type
from vigil.events import Violation

OUTBOX_CHANNEL = "vigil_outbox"  # LISTEN/NOTIFY channel that wakes the notifier

_SELECT_OPEN = (
    "SELECT alert_id, status, severity FROM alerts"
    " WHERE source_kind = %s AND source_id = %s AND code = %s AND status NOT IN ('closed', 'dismissed')"
    " FOR UPDATE"
)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def apply_violation(conn: AsyncConnection[Any], v: Violation) -> str | None:
    """Apply `v`; return what happened ("opened", "repeated", "cleared") or None for a no-op."""
    cur = await conn.execute(
        "SELECT 1 FROM alert_violations WHERE violation_id = %s AND state = %s", (v.violation_id, v.state)
    )
    if await cur.fetchone() is not None:
        return None  # already applied: a replay
    change: str | None
    if v.state == "active":
        change = await _apply_active(conn, v)
    else:
        change = await _apply_cleared(conn, v)
    if change is not None:
        await conn.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
    return change


async def _apply_active(conn: AsyncConnection[Any], v: Violation) -> str:
    kind = violation_type(v.code)
    detected = _ts(v.detected_at)
    # Two passes at most: if another writer opens the same alert between our SELECT and INSERT
    # (possible only during a consumer-group rebalance), the unique index makes our INSERT a
    # no-op and the second pass finds and updates their alert.
    for _ in range(2):
        cur = await conn.execute(_SELECT_OPEN, (v.source_kind, v.source_id, v.code))
        row = await cur.fetchone()
        if row is not None:
            alert_id, status, severity = row
            worse = max(severity, v.severity, key=SEVERITIES.index)
            await conn.execute(
                "UPDATE alerts SET occurrences = occurrences + 1, last_seen = GREATEST(last_seen, %s),"
                " evidence = %s, summary = %s, severity = %s, cleared_at = NULL, updated_at = now()"
                " WHERE alert_id = %s",
                (detected, Jsonb(v.evidence), v.summary, worse, alert_id),
            )
            await _audit(conn, alert_id, v, "repeated", status, status)
            await _remember(conn, v, alert_id)
            await _outbox_change(conn, alert_id, v, "repeated", status)
            return "repeated"
        cur = await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, evidence, detector, window_start, first_seen, last_seen, deadline)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING alert_id",
            (
                v.violation_id, v.code, v.enterprise_id, v.site_id, v.source_kind, v.source_id,
                v.severity, kind.tier, v.summary, Jsonb(v.evidence), v.detector,
                _ts(v.window_start), detected, detected, detected + timedelta(hours=kind.deadline_hours),
            ),
        )  # fmt: skip
        if await cur.fetchone() is not None:
            await _audit(conn, v.violation_id, v, "opened", None, "open")
            await _remember(conn, v, v.violation_id)
            await _outbox_change(conn, v.violation_id, v, "opened", "open")
            await _outbox_notice(conn, v.violation_id, v)
            return "opened"
    raise RuntimeError(f"could neither open nor find the alert for violation {v.violation_id}")


async def _apply_cleared(conn: AsyncConnection[Any], v: Violation) -> str | None:
    cur = await conn.execute(
        "SELECT a.alert_id, a.status FROM alert_violations av JOIN alerts a USING (alert_id)"
        " WHERE av.violation_id = %s AND av.state = 'active' FOR UPDATE OF a",
        (v.violation_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None  # the raise never reached us (it was dead-lettered): nothing to clear
    alert_id, status = row
    # The condition ended; the alert stays open until the enterprise's rectification is verified.
    # A clear older than the alert's latest repeat does not end the newer episode.
    await conn.execute(
        "UPDATE alerts SET cleared_at = %s, updated_at = now() WHERE alert_id = %s AND last_seen <= %s",
        (_ts(v.detected_at), alert_id, _ts(v.detected_at)),
    )
    await _audit(conn, alert_id, v, "condition_cleared", status, status)
    await _remember(conn, v, alert_id)
    await _outbox_change(conn, alert_id, v, "cleared", status)
    return "cleared"


async def _remember(conn: AsyncConnection[Any], v: Violation, alert_id: str) -> None:
    await conn.execute(
        "INSERT INTO alert_violations (violation_id, state, alert_id, detected_at, evidence)"
        " VALUES (%s, %s, %s, %s, %s)",
        (v.violation_id, v.state, alert_id, _ts(v.detected_at), Jsonb(v.evidence)),
    )


async def _audit(
    conn: AsyncConnection[Any],
    alert_id: str,
    v: Violation,
    action: str,
    before: str | None,
    after: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, f"detector:{v.detector}", action, before, after, v.summary),
    )


async def _outbox_change(
    conn: AsyncConnection[Any], alert_id: str, v: Violation, change: str, status: str
) -> None:
    # The status as of this change: published later, the alert row may have moved on.
    payload = {"change": change, "status": status, "violation_id": v.violation_id}
    await conn.execute(
        "INSERT INTO outbox (alert_id, enterprise_id, channel, payload) VALUES (%s, %s, 'alert_stream', %s)",
        (alert_id, v.enterprise_id, Jsonb(payload)),
    )


async def _outbox_notice(conn: AsyncConnection[Any], alert_id: str, v: Violation) -> None:
    kind = violation_type(v.code)
    notice = {
        "v": 1,
        "type": "notice",
        "notice_id": f"{alert_id}:opened",
        "alert_id": alert_id,
        "enterprise_id": v.enterprise_id,
        "site_id": v.site_id,
        "source_id": v.source_id,
        "code": v.code,
        "name_zh": kind.name_zh,
        "name_en": kind.name_en,
        "severity": v.severity,
        "tier": kind.tier,
        "summary": v.summary,
        "detected_at": v.detected_at,
        "rectify_by": v.detected_at + int(kind.deadline_hours * 3_600_000),
        "first_offence_warning": kind.first_offence_warning,
    }
    await conn.execute(
        "INSERT INTO outbox (alert_id, enterprise_id, channel, payload) VALUES (%s, %s, 'mqtt_notice', %s)",
        (alert_id, v.enterprise_id, Jsonb(notice)),
    )
