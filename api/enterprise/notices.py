"""The enterprise's notice inbox, newest first, and read receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts.notices import mark_read
from api.alert_query import tenant
from api.auth import EnterpriseUser
from api.deps import ACQUIRE_TIMEOUT_S, Pool, refusals
from api.enterprise.common import ALERT_ID_EXAMPLE, BAD_CURSOR, BASE, Cursor, Limit, error
from api.pagination import cursor_position, split_page

router = APIRouter()

_NOTICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"


class Notice(BaseModel):
    """One notice in the enterprise's inbox, as it was pushed (MQTT, webhook), with the read receipt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "notice_id": f"{ALERT_ID_EXAMPLE}:opened",
                    "alert_id": ALERT_ID_EXAMPLE,
                    "kind": "opened",
                    "created_at": "2024-05-01T08:00:05Z",
                    "read_at": None,
                    "payload": {"type": "notice", "kind": "opened", "code": "KITCHEN_SMOKING"},
                }
            ]
        }
    )

    notice_id: str
    alert_id: str
    kind: Literal["opened", "rejected", "escalated", "closed", "dismissed"]
    created_at: datetime
    read_at: datetime | None = Field(description="when the enterprise first read it; null while unread")
    payload: dict[str, Any] = Field(description="the notice as pushed: alert, deadline, leniency, evidence")


class NoticePage(BaseModel):
    items: list[Notice]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class ReadReceipt(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"notice_id": f"{ALERT_ID_EXAMPLE}:opened", "read_at": "2024-05-01T08:03:00Z"}]
        }
    )

    notice_id: str
    read_at: datetime = Field(description="the first read; reading again does not move it")


@router.get(
    "/notices",
    responses={**BASE, 400: BAD_CURSOR},
    summary="The notice inbox, newest first",
    description="Every notice sent to this enterprise, with its read receipt. `unread=true` for the unread.",
)
async def list_notices(
    principal: EnterpriseUser,
    pool: Pool,
    unread: Annotated[bool, Query(description="only notices not yet read")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> NoticePage:
    where: list[sql.Composable] = [sql.SQL("enterprise_id = %s")]
    params: list[Any] = [tenant(principal)]
    if unread:
        where.append(sql.SQL("read_at IS NULL"))
    if cursor is not None:
        where.append(sql.SQL("(created_at, notice_id) < (%s, %s)"))
        params.extend(cursor_position(cursor))
    query = sql.SQL(
        "SELECT notice_id, alert_id, kind, created_at, read_at, payload FROM notices WHERE {}"
        " ORDER BY created_at DESC, notice_id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page, next_cursor = split_page(rows, limit, key="created_at", tiebreak="notice_id")
    return NoticePage(items=[Notice.model_validate(r) for r in page], next_cursor=next_cursor)


@router.post(
    "/notices/{notice_id}/read",
    responses={**BASE, 404: error("no such notice (or not this enterprise's)", "notice n-1 not found")},
    summary="Read receipt: mark a notice read",
    description="The first read is kept, and audited on the alert as proof the enterprise was told.",
)
async def read_notice(
    principal: EnterpriseUser,
    pool: Pool,
    notice_id: Annotated[str, Path(pattern=_NOTICE_ID_PATTERN)],
) -> ReadReceipt:
    enterprise_id = tenant(principal)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            read_at = await mark_read(conn, notice_id, enterprise_id=enterprise_id, actor=principal.actor)
    return ReadReceipt(notice_id=notice_id, read_at=read_at)
