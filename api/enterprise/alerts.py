"""The enterprise's own alerts: the list, one alert with its notices, rectifications and history,
and acknowledging one. The reads and their tenancy are `api.alert_query`'s; what of them an
enterprise is shown is `api.enterprise.view`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from alerts import lifecycle
from api.alert_query import AlertFilter, alert_detail, alert_page, public_alert, tenant
from api.auth import EnterpriseUser
from api.deps import ACQUIRE_TIMEOUT_S, Pool, refusals
from api.enterprise.common import ALERT_NOT_FOUND, BAD_CURSOR, BASE, CONFLICT, Cursor, Limit, error
from api.enterprise.view import enterprise_alert, enterprise_detail, enterprise_page
from api.models import AlertStatus, EnterpriseAlert, EnterpriseAlertDetail, EnterpriseAlertPage
from api.params import CODE_PATTERN, AlertId
from api.uploads import MAX_DESCRIPTION

router = APIRouter()


class AcknowledgeBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "Seen; the manager is on it."}]})

    note: Annotated[str | None, Field(max_length=MAX_DESCRIPTION)] = None


@router.get(
    "/alerts",
    responses={**BASE, 400: BAD_CURSOR},
    summary="This enterprise's alerts, newest first",
)
async def list_alerts(
    principal: EnterpriseUser,
    pool: Pool,
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    since: Annotated[
        datetime | None, Query(description="created at or after (ISO 8601; no offset means UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="created before (ISO 8601; no offset means UTC)")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EnterpriseAlertPage:
    filters = AlertFilter(statuses=status_ or (), code=code, since=since, until=until)
    page = await alert_page(pool, filters, tenant=tenant(principal), limit=limit, cursor=cursor)
    return enterprise_page(page)


@router.get(
    "/alerts/{alert_id}",
    responses={**BASE, 404: ALERT_NOT_FOUND},
    summary="One of this enterprise's alerts: its notices, rectifications and what was decided and why",
)
async def get_alert(principal: EnterpriseUser, pool: Pool, alert_id: AlertId) -> EnterpriseAlertDetail:
    return enterprise_detail(await alert_detail(pool, alert_id, tenant=tenant(principal)))


@router.post(
    "/alerts/{alert_id}/acknowledge",
    responses={
        **BASE,
        404: ALERT_NOT_FOUND,
        409: CONFLICT,
        422: error("refused content", "note must be text"),
    },
    summary="Acknowledge an alert: seen, we are on it",
)
async def acknowledge(
    principal: EnterpriseUser,
    pool: Pool,
    alert_id: AlertId,
    body: Annotated[AcknowledgeBody | None, Body()] = None,
) -> EnterpriseAlert:
    enterprise_id = tenant(principal)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            row = await lifecycle.acknowledge(
                conn, alert_id, enterprise_id=enterprise_id, actor=principal.actor,
                note=body.note if body is not None else None,
            )  # fmt: skip
    return enterprise_alert(public_alert(row))
