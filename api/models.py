"""Response models: what the API promises, and what the OpenAPI document describes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# The values allowed by the CHECK constraint on alerts.status (migration 0001).
AlertStatus = Literal[
    "open",
    "notified",
    "acknowledged",
    "rectification_submitted",
    "rejected",
    "escalated",
    "closed",
    "dismissed",
]
SourceKind = Literal["device", "camera"]


class ErrorBody(BaseModel):
    detail: str


class AlertFacts(BaseModel):
    """What every view of an alert shows: the finding and its place in the rectification loop.
    The operators' view (AlertPublic) adds the bureau's handling; the enterprise's does not."""

    alert_id: str
    code: str
    # None only for a code since removed from the catalogue: old alerts must still list.
    name_en: str | None = Field(description="English name from the violation catalogue")
    name_zh: str | None = Field(description="Chinese name from the violation catalogue")
    enterprise_id: str
    site_id: str
    source_kind: SourceKind
    source_id: str
    status: AlertStatus
    # Plain str rather than the catalogue's Literal: one unexpected row must not break the wall.
    severity: str = Field(description="info, minor, major or critical")
    tier: int = Field(ge=1, le=3, description="1 = instant warning, 2 = rectify by deadline, 3 = routine")
    summary: str = Field(
        description="the detector's English engineering text, for logs; people read summary_zh/summary_en"
    )
    summary_zh: str = Field(
        description="the summary for people in Chinese, rendered from the code's template and evidence.params"
    )
    summary_en: str = Field(description="the same summary in English")
    evidence: dict[str, Any]
    detector: str
    window_start: datetime
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None = Field(description="when the condition itself ended")
    occurrences: int
    deadline: datetime
    created_at: datetime
    updated_at: datetime
    # The rectification loop (migration 0003).
    leniency: Literal["first_offence", "repeat", "not_eligible"] = Field(
        description="first offence (a warning if corrected in time), repeat, or not on the leniency list"
    )
    penalty_case: bool = Field(description="flagged for a penalty case (a repeat, or a missed deadline)")
    prior_alert_id: str | None = Field(description="the earlier offence that makes this one a repeat")
    disposition: Literal["warning", "penalty", "corrected", "false_alarm"] | None = Field(
        description="how a closed or dismissed alert ended"
    )


class AlertPublic(AlertFacts):
    assignee: str | None = Field(description="the staff member handling it")
    assigned_slot: Literal["A", "B", "C"] | None = Field(description="A primary, B backup, C specialist")
    difficult: bool
    notified_at: datetime | None
    acknowledged_at: datetime | None
    rectified_at: datetime | None = Field(description="when the latest rectification was submitted")
    escalated_at: datetime | None
    escalation_reason: str | None
    closed_at: datetime | None
    close_reason: str | None
    operator_ack_at: datetime | None = Field(description="when an operator took the alert on the wall")
    operator_ack_by: str | None


class Delivery(BaseModel):
    channel: Literal["mqtt_notice", "webhook"]
    attempts: int
    delivered_at: datetime | None
    dead_at: datetime | None = Field(description="given up after repeated failures")
    last_error: str | None


class NoticeRecord(BaseModel):
    notice_id: str
    kind: Literal["opened", "rejected", "escalated", "closed", "dismissed"]
    created_at: datetime
    read_at: datetime | None = Field(description="the enterprise's read receipt")
    deliveries: list[Delivery]


class Rectification(BaseModel):
    submitted_at: datetime
    submitted_by: str
    description: str
    photos: list[str] = Field(description="SHA-256 of each photo in the evidence store")
    decision: Literal["accepted", "rejected"] | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None


class AlertDetail(AlertPublic):
    audit: list[AuditEntry] = Field(description="every change to the alert, oldest first")
    notices: list[NoticeRecord] = Field(description="what the enterprise was told, and how it arrived")
    rectifications: list[Rectification] = Field(description="the enterprise's proof, oldest first")


# --- the enterprise's view ---------------------------------------------------------------------
# What an enterprise credential is shown of its own alerts: the alert less the bureau's internal
# handling (who handles it, in which slot, whether it was flagged difficult, who acknowledged it on
# the wall), and a history of what was decided and why as the enterprise was told it, instead of
# the audit trail with its internal notes and staff names.


class EnterpriseAlert(AlertFacts):
    notified_at: datetime | None
    acknowledged_at: datetime | None
    rectified_at: datetime | None = Field(description="when the latest rectification was submitted")
    escalated_at: datetime | None
    escalation_reason: str | None
    closed_at: datetime | None
    close_reason: str | None


class HistoryEntry(BaseModel):
    at: datetime
    action: Literal[
        "opened", "notified", "acknowledged", "rectification_submitted", "verified", "rejected",
        "escalated", "dismissed", "closed",
    ]  # fmt: skip
    by: Literal["enterprise", "bureau", "system"] = Field(description="who took the step, not by name")
    from_status: str | None
    to_status: str | None
    reason: str | None = Field(
        description="the enterprise's own words, or the reason the bureau gave it in the notice"
    )


class EnterpriseRectification(BaseModel):
    submitted_at: datetime
    submitted_by: str
    description: str
    photos: list[str] = Field(description="SHA-256 of each photo in the evidence store")
    decision: Literal["accepted", "rejected"] | None
    decided_at: datetime | None
    decision_reason: str | None = Field(description="as given to the enterprise")


class EnterpriseAlertDetail(EnterpriseAlert):
    history: list[HistoryEntry] = Field(description="what was decided and why, oldest first")
    notices: list[NoticeRecord] = Field(description="what the enterprise was told, and how it arrived")
    rectifications: list[EnterpriseRectification] = Field(description="the enterprise's proof, oldest first")


class EnterpriseAlertPage(BaseModel):
    items: list[EnterpriseAlert]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class AlertPage(BaseModel):
    items: list[AlertPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    reason: str | None = None


class SupervisionStatsRow(BaseModel):
    key: str = Field(
        description="the period start (ISO date, UTC), district ('unassigned' when the site has none),"
        " enterprise id or violation code"
    )
    alerts: int = Field(description="alerts created in the range")
    violations: int = Field(description="alerts not dismissed as false alarms")
    warnings: int = Field(description="closed with a warning (first offence corrected in time)")
    penalty_cases: int = Field(description="violations flagged for a penalty case")
    rectified: int = Field(description="closed, not as a false alarm")
    rectification_rate: float | None = Field(description="rectified / violations; null without violations")
    mean_hours_to_rectify: float | None = Field(
        description="mean hours from creation to closing over rectified alerts; null when none"
    )
    repeat_offences: int = Field(description="violations by an enterprise with an earlier closed offence")
    repeat_offence_rate: float | None = Field(description="repeat_offences / violations")
    false_alarms: int = Field(description="dismissed alerts")
    false_alarm_rate: float | None = Field(description="false_alarms / alerts")


class SupervisionStats(BaseModel):
    group_by: Literal["period", "district", "enterprise", "code"]
    period: Literal["day", "week", "month"]
    since: datetime
    until: datetime
    rows: list[SupervisionStatsRow]


class FalseAlarmStatsRow(BaseModel):
    key: str = Field(description="'camera:ID' or 'device:ID', or the detector (model) name")
    alerts: int
    false_alarms: int
    rate: float = Field(description="false_alarms / alerts")


class FalseAlarmStats(BaseModel):
    by: Literal["source", "detector"]
    since: datetime
    until: datetime
    rows: list[FalseAlarmStatsRow]
