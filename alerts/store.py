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

from alerts.lifecycle import escalate, lock_alert
from alerts.notices import OUTBOX_CHANNEL, write_change, write_notice
from alerts.policy import DEFAULT_POLICY, LeniencyDecision, Policy, decide_leniency, pick_handler
from vigil.catalogue import SEVERITIES, violation_type
from vigil.events import ClipReady, Violation

_SELECT_OPEN = (
    "SELECT alert_id, status, severity FROM alerts"
    " WHERE source_kind = %s AND source_id = %s AND code = %s AND status NOT IN ('closed', 'dismissed')"
    " FOR UPDATE"
)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def apply_violation(
    conn: AsyncConnection[Any], v: Violation, policy: Policy = DEFAULT_POLICY
) -> str | None:
    """Apply `v`; return what happened ("opened", "repeated", "cleared") or None for a no-op."""
    cur = await conn.execute(
        "SELECT 1 FROM alert_violations WHERE violation_id = %s AND state = %s", (v.violation_id, v.state)
    )
    if await cur.fetchone() is not None:
        return None  # already applied: a replay
    change: str | None
    if v.state == "active":
        change = await _apply_active(conn, v, policy)
    else:
        change = await _apply_cleared(conn, v)
    if change is not None:
        await conn.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
    return change


async def _apply_active(conn: AsyncConnection[Any], v: Violation, policy: Policy) -> str:
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
            await write_change(
                conn, alert_id, v.enterprise_id, "repeated", status, violation_id=v.violation_id
            )
            return "repeated"
        leniency = await decide_leniency(conn, v.enterprise_id, v.code, detected, policy)
        staff, slot = await pick_handler(conn, v.site_id, "new")
        cur = await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, evidence, detector, window_start, first_seen, last_seen, deadline,"
            " leniency, prior_alert_id, penalty_case, assignee, assigned_slot)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s,"
            # The enterprise's time runs from the notice: a violation that reaches us late (a
            # replay after an outage) still leaves the whole rectification period.
            " GREATEST(%s::timestamptz, now()) + %s::interval, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING alert_id",
            (
                v.violation_id, v.code, v.enterprise_id, v.site_id, v.source_kind, v.source_id,
                v.severity, kind.tier, v.summary, Jsonb(v.evidence), v.detector,
                _ts(v.window_start), detected, detected, detected, timedelta(hours=kind.deadline_hours),
                leniency.leniency, leniency.prior_alert_id, leniency.penalty_case, staff, slot,
            ),
        )  # fmt: skip
        if await cur.fetchone() is not None:
            await _opened(conn, v, leniency, staff, policy)
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
    await write_change(conn, alert_id, v.enterprise_id, "cleared", status, violation_id=v.violation_id)
    return "cleared"


async def _opened(
    conn: AsyncConnection[Any], v: Violation, leniency: LeniencyDecision, staff: str | None, policy: Policy
) -> None:
    alert_id = v.violation_id
    assigned = f"; assigned to {staff}" if staff else "; no handler present at the site"
    await _audit(conn, alert_id, v, "opened", None, "open", f"{v.summary} ({leniency.leniency}{assigned})")
    await _remember(conn, v, alert_id)
    await write_change(conn, alert_id, v.enterprise_id, "opened", "open", violation_id=v.violation_id)
    alert = await lock_alert(conn, alert_id)
    if leniency.leniency != "repeat":
        await write_notice(conn, alert, "opened", public_url=policy.public_url, timezone=policy.timezone)
        return
    # A repeat offence goes straight to the specialist. The enterprise hears of it twice, on every
    # channel it has: the opening notice (already escalated, a penalty case) and then the escalation
    # as a notice of its own with the reason, so a receiver that acts on `escalated` notices (as for
    # a missed deadline) sees this one too.
    closed = f"{leniency.prior_closed_at:%Y-%m-%d}" if leniency.prior_closed_at else "earlier"
    reason = f"repeat offence: alert {leniency.prior_alert_id} of the same code closed {closed}"
    alert = await escalate(conn, alert, actor="policy", policy=policy, notify=False, reason=reason)
    await write_notice(conn, alert, "opened", public_url=policy.public_url, timezone=policy.timezone)
    await write_notice(
        conn, alert, "escalated", public_url=policy.public_url, reason=reason, timezone=policy.timezone
    )


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
    reason: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, f"detector:{v.detector}", action, before, after, reason or v.summary),
    )


async def record_clip(conn: AsyncConnection[Any], clip: ClipReady) -> str | None:
    """Put an event clip (or why there is none) on the alert of its violation, with an audit row;
    returns the alert id, or None when the violation is unknown (never stored) or already has it.

    The clip goes into the violation's evidence and, while the alert still shows that violation's
    evidence (no later repeat replaced it), into the alert's: `clip_sha256`, `clip_duration_s`,
    `clip_frames`, `clip_truncated`. Retention keeps it as it keeps the snapshot, since it finds
    every SHA-256 in those documents."""
    cur = await conn.execute(
        "SELECT av.alert_id, av.evidence, a.status FROM alert_violations av JOIN alerts a USING (alert_id)"
        " WHERE av.violation_id = %s AND av.state = 'active' AND a.enterprise_id = %s FOR UPDATE OF a",
        (clip.violation_id, clip.enterprise_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    alert_id, evidence, status = row
    if clip.status == "ready":
        if (evidence or {}).get("clip_sha256") == clip.sha256:
            return None  # a replay
        fields = {
            "clip_sha256": clip.sha256,
            "clip_duration_s": round(clip.duration_ms / 1000, 1),
            "clip_frames": clip.frames,
            "clip_truncated": clip.truncated,
        }
        action = "clip_recorded"
        reason = f"event clip {clip.duration_ms / 1000:.1f} s" + (
            " (truncated: the camera delivered frames for part of the window only)" if clip.truncated else ""
        )
    else:
        if (evidence or {}).get("clip_failed"):
            return None  # a replay
        fields = {"clip_failed": clip.detail or "failed"}
        action = "clip_failed"
        reason = f"no event clip: {clip.detail or 'the clip could not be made'}"
    await conn.execute(
        "UPDATE alert_violations SET evidence = evidence || %s WHERE violation_id = %s AND state = 'active'",
        (Jsonb(fields), clip.violation_id),
    )
    await conn.execute(
        "UPDATE alerts SET evidence = evidence || %s WHERE alert_id = %s"
        " AND evidence ->> 'frame_sha256' IS NOT DISTINCT FROM %s",
        (Jsonb(fields), alert_id, (evidence or {}).get("frame_sha256")),
    )
    await conn.execute(
        "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, "camera-ingest", action, status, status, reason),
    )
    return str(alert_id)
