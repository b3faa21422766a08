"""The operators' read access to alerts: a filtered, keyset-paginated list of every enterprise's
alerts, and one alert with its audit trail. The queries are `api.alert_query`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.alert_query import AlertFilter, alert_detail, alert_page
from api.auth import AUTH_ERRORS, Operator
from api.deps import Pool
from api.models import AlertDetail, AlertPage, AlertStatus, ErrorBody
from api.params import CODE_PATTERN, DISTRICT_PATTERN, ID_PATTERN, TEXT_PATTERN, AlertId

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get(
    "",
    responses={**AUTH_ERRORS, 400: {"model": ErrorBody, "description": "invalid cursor"}},
    summary="List alerts, newest first",
)
async def list_alerts(
    _principal: Operator,
    pool: Pool,
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    enterprise_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    site_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    district: Annotated[str | None, Query(min_length=1, max_length=64, pattern=DISTRICT_PATTERN)] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=TEXT_PATTERN,
            description="text in the summary or any note: audit reasons, rectifications, closing reason",
        ),
    ] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: Annotated[
        datetime | None, Query(description="created at or after (ISO 8601; no offset means UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="created before (ISO 8601; no offset means UTC)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> AlertPage:
    filters = AlertFilter(
        statuses=status_ or (),
        code=code,
        enterprise_id=enterprise_id,
        site_id=site_id,
        district=district,
        q=q,
        tier=tier,
        since=since,
        until=until,
    )
    return await alert_page(pool, filters, tenant=None, limit=limit, cursor=cursor)


@router.get(
    "/{alert_id}",
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody, "description": "no such alert"}},
    summary="One alert with its audit trail",
)
async def get_alert(_principal: Operator, pool: Pool, alert_id: AlertId) -> AlertDetail:
    return await alert_detail(pool, alert_id, tenant=None)
