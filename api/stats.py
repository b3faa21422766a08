"""Supervision statistics for upward reporting, and false-alarm statistics per source and model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from alerts.stats import FalseAlarmBy, GroupBy, Period, false_alarm_stats, supervision_stats
from api.auth import Operator
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import (
    ErrorBody,
    FalseAlarmStats,
    FalseAlarmStatsRow,
    SupervisionStats,
    SupervisionStatsRow,
)
from api.params import CODE_PATTERN, DISTRICT_PATTERN, ID_PATTERN, as_utc

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

DEFAULT_RANGE = timedelta(days=30)
# Five calendar years, leap days included: a report over a longer range is refused, not run.
MAX_RANGE = timedelta(days=5 * 365 + 2)

# Starlette renamed its constant for 422 (..._ENTITY is deprecated); the number is stable.
UNPROCESSABLE = 422

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    422: {"description": "invalid parameters, or since not before until, or a range over five years"},
}

Since = Annotated[
    datetime | None,
    Query(description="created at or after (ISO 8601; no offset means UTC); default: 30 days before until"),
]
Until = Annotated[
    datetime | None, Query(description="created before (ISO 8601; no offset means UTC); default: now")
]


def _resolve_range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = as_utc(until) if until is not None else datetime.now(UTC)
    try:
        start = as_utc(since) if since is not None else end - DEFAULT_RANGE
    except OverflowError:  # an `until` within 30 days of year 1: a client error, not a 500
        raise HTTPException(UNPROCESSABLE, "until is too early to default since 30 days before it") from None
    if start >= end:
        raise HTTPException(
            UNPROCESSABLE,
            f"since ({start.isoformat()}) must be before until ({end.isoformat()})",
        )
    if end - start > MAX_RANGE:
        raise HTTPException(
            UNPROCESSABLE,
            f"the range from since to until is over five years ({MAX_RANGE.days} days); ask for less",
        )
    return start, end


@router.get(
    "", responses=_ERRORS, summary="Warnings, violations, rectification, repeat and false-alarm figures"
)
async def get_stats(
    _principal: Operator,
    pool: Pool,
    group_by: Annotated[
        GroupBy, Query(description="one row per period, district, enterprise or code")
    ] = "period",
    period: Annotated[Period, Query(description="period length when group_by=period (UTC)")] = "month",
    since: Since = None,
    until: Until = None,
    enterprise_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    district: Annotated[
        str | None, Query(pattern=DISTRICT_PATTERN, description="'unassigned' for sites without one")
    ] = None,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
) -> SupervisionStats:
    start, end = _resolve_range(since, until)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION READ ONLY")
        # A report aggregates many rows; it must not hold a pooled connection for ever.
        await conn.execute("SET LOCAL statement_timeout = '30s'")
        rows = await supervision_stats(
            conn,
            group_by=group_by,
            period=period,
            since=start,
            until=end,
            enterprise_id=enterprise_id,
            district=district,
            code=code,
        )
    return SupervisionStats(
        group_by=group_by,
        period=period,
        since=start,
        until=end,
        rows=[SupervisionStatsRow.model_validate(r, from_attributes=True) for r in rows],
    )


@router.get("/false-alarms", responses=_ERRORS, summary="False alarms per camera/device or per detector")
async def get_false_alarm_stats(
    _principal: Operator,
    pool: Pool,
    by: Annotated[
        FalseAlarmBy, Query(description="source: per camera or device; detector: per model")
    ] = "source",
    since: Since = None,
    until: Until = None,
    enterprise_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="most false alarms first")] = 100,
) -> FalseAlarmStats:
    start, end = _resolve_range(since, until)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION READ ONLY")
        # A report aggregates many rows; it must not hold a pooled connection for ever.
        await conn.execute("SET LOCAL statement_timeout = '30s'")
        rows = await false_alarm_stats(
            conn, by=by, since=start, until=end, enterprise_id=enterprise_id, limit=limit
        )
    return FalseAlarmStats(
        by=by,
        since=start,
        until=end,
        rows=[FalseAlarmStatsRow.model_validate(r, from_attributes=True) for r in rows],
    )
