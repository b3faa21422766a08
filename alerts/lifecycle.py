"""The alert lifecycle: every move an operator, an enterprise or a timer can make, in one place.

    open ─▶ notified ─▶ acknowledged ─▶ rectification_submitted ─▶ closed (verified)
      │         │             │                  │
      │         │             │                  └─▶ rejected (new deadline) ─▶ rectification_submitted …
      └─────────┴─────────────┴─▶ escalated (deadline passed, repeat offence, or by hand) ─▶ …
    any state but closed/dismissed ─▶ dismissed (a false alarm, with a reason)

Each action locks the alert row, checks the move against `ALLOWED` (an illegal one raises
`IllegalTransition` naming the states it is allowed from), updates the alert, appends an audit row
(who, when, from, to, why) and queues the alert change and, where the enterprise must hear of it,
a notice — all in the caller's transaction, so either all of it happens or none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.notices import NoticeKind, write_change, write_notice
from alerts.policy import DEFAULT_POLICY, Policy, pick_handler
from vigil.catalogue import catalogue
from vigil.errors import IllegalTransition, InvalidRequest, NotFound

Action = Literal[
    "acknowledge",
    "submit_rectification",
    "verify",
    "reject",
    "dismiss",
    "escalate",
    "flag_difficult",
    "assign",
    "operator_acknowledge",
]

TERMINAL = frozenset({"closed", "dismissed"})
ACTIVE = frozenset({"open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated"})
# States in which the enterprise owes something by the deadline: the timer watches these.
AWAITING_ENTERPRISE = frozenset({"open", "notified", "acknowledged", "rejected"})

ALLOWED: dict[Action, frozenset[str]] = {
    "acknowledge": frozenset({"open", "notified", "escalated"}),
    "submit_rectification": AWAITING_ENTERPRISE | {"escalated"},
    "verify": frozenset({"rectification_submitted"}),
    "reject": frozenset({"rectification_submitted"}),
    "dismiss": ACTIVE,
    "escalate": AWAITING_ENTERPRISE,
    "flag_difficult": ACTIVE,
    "assign": ACTIVE,
    "operator_acknowledge": ACTIVE,
}

# Device rules whose violation is a point in time (an overdue cylinder filled that day): nothing
# ever clears them, so an unfinished condition cannot hold up their verification.
_POINT_RULES = frozenset({"date_compare"})
# Why a verification is refused while the device still reports the violation, in both languages of
# the catalogue (the operator reads it in the 409; the code's names come from the catalogue).
STILL_ACTIVE_TEXT = (
    "设备仍在报告“{name_zh}”（违法状态尚未解除），整改未完成，不能核验结案",
    "cannot verify: the device still reports {name_en} (the condition has not cleared), so the"
    " rectification is not complete",
)
_MAX_TEXT = 4000  # reasons and descriptions: a paragraph, not a document
_MAX_PHOTOS = 10
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_transition(action: Action, status: str) -> None:
    allowed = ALLOWED[action]
    if status not in allowed:
        raise IllegalTransition(
            f"cannot {action.replace('_', ' ')} an alert that is {status}"
            f" (allowed from: {', '.join(sorted(allowed))})"
        )


def condition_active(alert: Mapping[str, Any]) -> bool:
    """Whether the device behind `alert` still reports its condition: the detector has not sent the
    clear (`cleared_at` is null). Camera findings and point violations have no ongoing condition."""
    if alert["source_kind"] != "device" or alert["cleared_at"] is not None:
        return False
    return (alert["evidence"] or {}).get("rule") not in _POINT_RULES


def check_condition_cleared(alert: Mapping[str, Any]) -> None:
    """Refuse to close a device alert as rectified while the sensor says the violation goes on: the
    bureau closes a case on the facts, not on a photo (a freezer still at −5 °C is not fixed)."""
    if condition_active(alert):
        kind = catalogue().get(alert["code"])
        zh, en = STILL_ACTIVE_TEXT
        names = {
            "name_zh": kind.name_zh if kind else alert["code"],
            "name_en": kind.name_en if kind else alert["code"],
        }
        raise IllegalTransition(f"{en.format(**names)} / {zh.format(**names)}")


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    if value is None or not value.strip():
        if required:
            raise InvalidRequest(f"{what} is required")
        return None
    value = value.strip()
    if len(value) > _MAX_TEXT or "\x00" in value:
        raise InvalidRequest(f"{what} must be at most {_MAX_TEXT} characters of text")
    return value


async def lock_alert(
    conn: AsyncConnection[Any], alert_id: str, *, enterprise_id: str | None = None
) -> dict[str, Any]:
    """The alert row, locked for this transaction. An enterprise asking for another's alert is told
    it does not exist."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT *, now() AS now FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,))
        row = await cur.fetchone()
    if row is None or (enterprise_id is not None and row["enterprise_id"] != enterprise_id):
        raise NotFound(f"alert {alert_id} not found")
    return row


async def move(
    conn: AsyncConnection[Any],
    alert: Mapping[str, Any],
    action: str,
    *,
    actor: str,
    reason: str | None,
    to_status: str | None = None,
    changes: Mapping[str, Any] | None = None,
    notice: NoticeKind | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Apply one lifecycle step to a locked alert: update, audit, queue the change and the notice."""
    before = alert["status"]
    after = to_status or before
    values = {**(changes or {}), "status": after}
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in values
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("UPDATE alerts SET {}, updated_at = now() WHERE alert_id = {} RETURNING *").format(
                assignments, sql.Placeholder("alert_id")
            ),
            {**values, "alert_id": alert["alert_id"]},
        )
        updated = await cur.fetchone()
    assert updated is not None
    await conn.execute(
        "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert["alert_id"], actor, action, before, after, reason),
    )
    await write_change(conn, alert["alert_id"], alert["enterprise_id"], action, after)
    if notice is not None:
        await write_notice(
            conn, updated, notice, public_url=policy.public_url, reason=reason, timezone=policy.timezone
        )
    return updated


# --- the enterprise's moves ---------------------------------------------------------------------


async def acknowledge(
    conn: AsyncConnection[Any], alert_id: str, *, enterprise_id: str, actor: str, note: str | None = None
) -> dict[str, Any]:
    alert = await lock_alert(conn, alert_id, enterprise_id=enterprise_id)
    check_transition("acknowledge", alert["status"])
    return await move(
        conn, alert, "acknowledged", actor=actor, reason=_text(note, "note", required=False),
        to_status="acknowledged", changes={"acknowledged_at": alert["now"]},
    )  # fmt: skip


async def submit_rectification(
    conn: AsyncConnection[Any],
    alert_id: str,
    *,
    enterprise_id: str,
    actor: str,
    description: str,
    photos: Sequence[str] = (),
) -> dict[str, Any]:
    """The enterprise's proof: what it did, with photos already in the evidence store (by SHA-256)."""
    text = _text(description, "description", required=True)
    if len(photos) > _MAX_PHOTOS:
        raise InvalidRequest(f"at most {_MAX_PHOTOS} photos per rectification, got {len(photos)}")
    bad = [p for p in photos if not isinstance(p, str) or not _SHA256.match(p)]
    if bad:
        raise InvalidRequest(f"photos must be SHA-256 hex digests of stored images; refused {bad[:3]}")
    alert = await lock_alert(conn, alert_id, enterprise_id=enterprise_id)
    check_transition("submit_rectification", alert["status"])
    await conn.execute(
        "INSERT INTO rectifications (alert_id, submitted_by, description, photos) VALUES (%s, %s, %s, %s)",
        (alert_id, actor, text, Jsonb(list(photos))),
    )
    return await move(
        conn, alert, "rectification_submitted", actor=actor, reason=text,
        to_status="rectification_submitted",
        changes={"rectified_at": alert["now"], "acknowledged_at": alert["acknowledged_at"] or alert["now"]},
    )  # fmt: skip


# --- the bureau's moves -------------------------------------------------------------------------


async def verify(
    conn: AsyncConnection[Any], alert_id: str, *, actor: str, note: str | None = None, policy: Policy
) -> dict[str, Any]:
    """Accept the rectification and close. A first offence corrected by its deadline ends in a
    warning; a repeat, or anything corrected late, is a penalty case and gets a follow-up visit."""
    alert = await lock_alert(conn, alert_id)
    check_transition("verify", alert["status"])
    check_condition_cleared(alert)
    late = alert["rectified_at"] is not None and alert["rectified_at"] > alert["deadline"]
    penalty = alert["penalty_case"] or late
    disposition = "penalty" if penalty else "warning" if alert["leniency"] == "first_offence" else "corrected"
    await _decide_latest_rectification(conn, alert_id, "accepted", actor, note)
    reason = _text(note, "note", required=False) or f"rectification verified; disposition {disposition}"
    updated = await move(
        conn, alert, "verified", actor=actor, reason=reason, to_status="closed",
        changes={"closed_at": alert["now"], "close_reason": reason, "disposition": disposition,
                 "penalty_case": penalty},
        notice="closed", policy=policy,
    )  # fmt: skip
    if penalty:
        await conn.execute(
            "INSERT INTO follow_up_visits (alert_id, site_id, staff_id, due_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (alert_id) DO NOTHING",
            (alert_id, alert["site_id"], alert["assignee"], alert["now"] + policy.follow_up_after),
        )
    return updated


async def reject(
    conn: AsyncConnection[Any],
    alert_id: str,
    *,
    actor: str,
    reason: str,
    deadline: datetime | None = None,
    policy: Policy,
) -> dict[str, Any]:
    """Send the rectification back with a reason and a new deadline (by default, the code's own
    rectification time again from now)."""
    why = _text(reason, "reason", required=True)
    alert = await lock_alert(conn, alert_id)
    check_transition("reject", alert["status"])
    if deadline is None:
        kind = catalogue().get(alert["code"])
        deadline = alert["now"] + timedelta(hours=kind.deadline_hours if kind else 24)
    elif deadline <= alert["now"]:
        raise InvalidRequest("the new deadline must be in the future")
    await _decide_latest_rectification(conn, alert_id, "rejected", actor, why)
    return await move(
        conn, alert, "rejected", actor=actor, reason=why, to_status="rejected",
        changes={"deadline": deadline}, notice="rejected", policy=policy,
    )  # fmt: skip


async def dismiss(
    conn: AsyncConnection[Any], alert_id: str, *, actor: str, reason: str, policy: Policy
) -> dict[str, Any]:
    """A false alarm. The reason is kept: false-alarm rates per camera, device and model come from it."""
    why = _text(reason, "reason", required=True)
    alert = await lock_alert(conn, alert_id)
    check_transition("dismiss", alert["status"])
    return await move(
        conn, alert, "dismissed", actor=actor, reason=why, to_status="dismissed",
        changes={"closed_at": alert["now"], "close_reason": why, "disposition": "false_alarm",
                 "penalty_case": False},
        notice="dismissed", policy=policy,
    )  # fmt: skip


async def escalate(
    conn: AsyncConnection[Any],
    alert_id: str | Mapping[str, Any],
    *,
    actor: str,
    reason: str,
    policy: Policy,
    penalty: bool = False,
    notify: bool = True,
) -> dict[str, Any]:
    """To the specialist (C), with a notice to the enterprise unless the caller sends its own.
    `penalty` flags a penalty case (a missed deadline forfeits first-offence leniency)."""
    why = _text(reason, "reason", required=True)
    alert = await lock_alert(conn, alert_id) if isinstance(alert_id, str) else alert_id
    check_transition("escalate", alert["status"])
    staff, slot = await pick_handler(conn, alert["site_id"], "specialist")
    return await move(
        conn, alert, "escalated", actor=actor, reason=why, to_status="escalated",
        changes={"escalated_at": alert["now"], "escalation_reason": why,
                 "penalty_case": alert["penalty_case"] or penalty,
                 "assignee": staff or alert["assignee"], "assigned_slot": slot or alert["assigned_slot"]},
        notice="escalated" if notify else None, policy=policy,
    )  # fmt: skip


async def operator_acknowledge(
    conn: AsyncConnection[Any], alert_id: str, *, actor: str, note: str | None = None
) -> dict[str, Any]:
    """The monitoring centre has seen the alert and someone has it: recorded once, no state change
    (the enterprise's acknowledgement is the lifecycle's `acknowledged`)."""
    alert = await lock_alert(conn, alert_id)
    check_transition("operator_acknowledge", alert["status"])
    if alert["operator_ack_at"] is not None:
        return alert
    return await move(
        conn, alert, "operator_acknowledged", actor=actor, reason=_text(note, "note", required=False),
        changes={"operator_ack_at": alert["now"], "operator_ack_by": actor},
    )  # fmt: skip


async def flag_difficult(
    conn: AsyncConnection[Any], alert_id: str, *, actor: str, reason: str
) -> dict[str, Any]:
    why = _text(reason, "reason", required=True)
    alert = await lock_alert(conn, alert_id)
    check_transition("flag_difficult", alert["status"])
    staff, slot = await pick_handler(conn, alert["site_id"], "specialist")
    return await move(
        conn, alert, "flagged_difficult", actor=actor, reason=why,
        changes={"difficult": True, "assignee": staff or alert["assignee"],
                 "assigned_slot": slot or alert["assigned_slot"]},
    )  # fmt: skip


async def assign(
    conn: AsyncConnection[Any], alert_id: str, *, actor: str, staff_id: str, reason: str | None = None
) -> dict[str, Any]:
    alert = await lock_alert(conn, alert_id)
    check_transition("assign", alert["status"])
    cur = await conn.execute(
        "SELECT (SELECT slot FROM site_handlers WHERE site_id = %s AND staff_id = s.staff_id"
        " ORDER BY slot LIMIT 1) FROM staff s WHERE s.staff_id = %s",
        (alert["site_id"], staff_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise InvalidRequest(f"no staff member {staff_id}")
    why = _text(reason, "reason", required=False) or f"to {staff_id}"
    changes = {"assignee": staff_id, "assigned_slot": row[0]}
    return await move(conn, alert, "assigned", actor=actor, reason=why, changes=changes)


async def record_visit(
    conn: AsyncConnection[Any], visit_id: int, *, actor: str, outcome: str, notes: str | None = None
) -> None:
    """The outcome of a follow-up visit; the alert's audit trail records it too."""
    if outcome not in ("compliant", "non_compliant"):
        raise InvalidRequest("outcome must be compliant or non_compliant")
    cur = await conn.execute(
        "UPDATE follow_up_visits SET status = 'completed', outcome = %s, notes = %s, completed_at = now()"
        " WHERE visit_id = %s AND status <> 'completed' RETURNING alert_id",
        (outcome, _text(notes, "notes", required=False), visit_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no open follow-up visit {visit_id}")
    await conn.execute(
        "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
        " VALUES (%s, %s, 'follow_up_visit', 'closed', 'closed', %s)",
        (row[0], actor, f"visit {visit_id}: {outcome}" + (f" ({notes})" if notes else "")),
    )


async def _decide_latest_rectification(
    conn: AsyncConnection[Any], alert_id: str, decision: str, actor: str, reason: str | None
) -> None:
    await conn.execute(
        "UPDATE rectifications SET decision = %s, decided_at = now(), decided_by = %s, decision_reason = %s"
        " WHERE rectification_id = (SELECT max(rectification_id) FROM rectifications WHERE alert_id = %s)",
        (decision, actor, reason, alert_id),
    )
