"""The enterprise's view of its alerts, made from the operator's: the bureau's internal handling
taken out. An enterprise is shown what was decided and why as it was told (opened, acknowledged,
rectification submitted, verified or rejected with the reason in the notice, escalated, dismissed,
closed), never the audit trail itself: that carries internal notes (the reason an alert was
flagged difficult), staff and operator names, assignments and slots, and wall acknowledgements.

An allow-list, not a deny-list: an audit action added later stays internal until it is added here.
"""

from __future__ import annotations

from typing import Literal, get_args

from api.models import (
    AlertDetail,
    AlertPage,
    AlertPublic,
    AuditEntry,
    EnterpriseAlert,
    EnterpriseAlertDetail,
    EnterpriseAlertPage,
    EnterpriseRectification,
    HistoryEntry,
)

Actor = Literal["enterprise", "bureau", "system"]
_SHOWN = frozenset(get_args(HistoryEntry.model_fields["action"].annotation))
# Steps whose reason was sent to the enterprise in a notice (verified: the closing notice), or is
# the enterprise's own words (its acknowledgement note, its rectification's description). The
# reason of "opened" is internal (it names the handler assigned), and "notified" says which of our
# channels carried the notice.
_REASON_TOLD = frozenset(
    {"acknowledged", "rectification_submitted", "verified", "rejected", "escalated", "dismissed"}
)
# Actors that are Vigil itself rather than a person (alerts/store.py, timers.py, notifier.py).
_SYSTEM = ("detector:", "notifier", "policy", "timer", "system:")


def actor_kind(actor: str) -> Actor:
    """Who took a step, as the enterprise may know it: itself, the bureau, or the system."""
    if actor.startswith("enterprise:"):
        return "enterprise"
    return "system" if actor.startswith(_SYSTEM) else "bureau"


def history(audit: list[AuditEntry]) -> list[HistoryEntry]:
    entries = []
    for a in audit:
        if a.action not in _SHOWN:
            continue
        by = actor_kind(a.actor)
        told = a.action in _REASON_TOLD and (a.action != "acknowledged" or by == "enterprise")
        entry = {"at": a.at, "action": a.action, "by": by, "from_status": a.from_status}
        entry |= {"to_status": a.to_status, "reason": a.reason if told else None}
        entries.append(HistoryEntry.model_validate(entry))
    return entries


def enterprise_alert(alert: AlertPublic) -> EnterpriseAlert:
    # Validating from the operator's model drops the fields the enterprise model does not have.
    return EnterpriseAlert.model_validate(alert.model_dump())


def enterprise_page(page: AlertPage) -> EnterpriseAlertPage:
    return EnterpriseAlertPage(items=[enterprise_alert(a) for a in page.items], next_cursor=page.next_cursor)


def enterprise_detail(detail: AlertDetail) -> EnterpriseAlertDetail:
    fields = detail.model_dump(exclude={"audit", "rectifications"})
    rectifications = [
        EnterpriseRectification.model_validate(r.model_dump(exclude={"decided_by"}))
        for r in detail.rectifications
    ]
    return EnterpriseAlertDetail.model_validate(
        {**fields, "history": history(detail.audit), "rectifications": rectifications}
    )
