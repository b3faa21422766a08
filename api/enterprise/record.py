"""The enterprise's record: its ended alerts (closed or dismissed) with their disposition, and its
compliance score with every part of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts.compliance import DEFAULT_WINDOW_DAYS, FORMULA, MAX_WINDOW_DAYS, compliance
from api.alert_query import AlertFilter, alert_page, tenant
from api.auth import EnterpriseUser
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.enterprise.common import BAD_CURSOR, BASE, Cursor, Limit
from api.enterprise.view import enterprise_page
from api.models import EnterpriseAlertPage

router = APIRouter()

_ENDED_STATUSES = ("closed", "dismissed")


class ComplianceReport(BaseModel):
    """The score and every part of it; the formula is in `formula`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enterprise_id": "ent-noodle-house",
                    "since": "2023-05-02T08:00:00Z",
                    "until": "2024-05-01T08:00:00Z",
                    "window_days": 365,
                    "score": 87,
                    "violations": 2,
                    "false_alarms": 1,
                    "still_open": 0,
                    "by_severity": {"major": 1, "minor": 1},
                    "penalty_cases": 0,
                    "repeat_offences": 0,
                    "missed_deadlines": 1,
                    "rectified_on_time": 1,
                    "on_time_rate": 0.5,
                    "deductions": 15,
                    "severity_points": 12,
                    "penalty_points": 0,
                    "missed_deadline_points": 3,
                    "on_time_credit": 2,
                    "formula": FORMULA,
                }
            ]
        }
    )

    enterprise_id: str
    since: datetime
    until: datetime
    window_days: int
    score: int = Field(ge=0, le=100, description="100 is spotless; see `formula`")
    violations: int = Field(
        description="confirmed violations created in the window (verified, escalated or past the deadline)"
    )
    false_alarms: int = Field(description="alerts dismissed as false alarms: never counted against you")
    unconfirmed: int = Field(
        description="detections not yet confirmed (not verified or escalated, deadline not passed): cost"
        " nothing yet"
    )
    still_open: int = Field(description="violations not yet closed")
    by_severity: dict[str, int] = Field(description="violations per severity")
    penalty_cases: int = Field(description="violations referred for a penalty case")
    repeat_offences: int = Field(description="violations that repeated an earlier offence")
    missed_deadlines: int = Field(description="violations whose rectification deadline was missed")
    rectified_on_time: int = Field(description="violations rectified by the deadline and accepted")
    on_time_rate: float | None = Field(
        description="rectified_on_time / (rectified_on_time + missed_deadlines); null when neither"
    )
    deductions: int = Field(description="severity_points + penalty_points + missed_deadline_points")
    severity_points: int
    penalty_points: int
    missed_deadline_points: int
    on_time_credit: int = Field(description="points given back for on-time rectifications")
    formula: str


@router.get(
    "/history",
    responses={**BASE, 400: BAD_CURSOR},
    summary="This enterprise's ended alerts (closed or dismissed) with their disposition, latest first",
)
async def history(
    principal: EnterpriseUser,
    pool: Pool,
    disposition: Annotated[
        Literal["warning", "penalty", "corrected", "false_alarm"] | None,
        Query(description="only alerts that ended this way"),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EnterpriseAlertPage:
    filters = AlertFilter(statuses=_ENDED_STATUSES, disposition=disposition)
    page = await alert_page(
        pool, filters, tenant=tenant(principal), limit=limit, cursor=cursor, order="ended"
    )
    return enterprise_page(page)


@router.get(
    "/compliance",
    responses=BASE,
    summary="This enterprise's compliance score (0-100) and how it was reached",
    description=FORMULA,
)
async def get_compliance(
    principal: EnterpriseUser,
    pool: Pool,
    days: Annotated[
        int, Query(ge=1, le=MAX_WINDOW_DAYS, description="the window: alerts created in the last N days")
    ] = DEFAULT_WINDOW_DAYS,
) -> ComplianceReport:
    enterprise_id = tenant(principal)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        result = await compliance(conn, enterprise_id, days=days)
    return ComplianceReport(
        enterprise_id=result.enterprise_id,
        since=result.since,
        until=result.until,
        window_days=result.window_days,
        score=result.score,
        violations=result.violations,
        false_alarms=result.false_alarms,
        unconfirmed=result.unconfirmed,
        still_open=result.still_open,
        by_severity=result.by_severity,
        penalty_cases=result.penalty_cases,
        repeat_offences=result.repeat_offences,
        missed_deadlines=result.missed_deadlines,
        rectified_on_time=result.rectified_on_time,
        on_time_rate=result.on_time_rate,
        deductions=result.deductions,
        severity_points=result.severity_points,
        penalty_points=result.penalty_points,
        missed_deadline_points=result.missed_deadline_points,
        on_time_credit=result.on_time_credit,
        formula=FORMULA,
    )
