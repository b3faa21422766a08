"""Enterprises: list, read, create or rename, delete (only while it has no sites).

An enterprise's webhook signing secret is never selected; its webhook URL is shown masked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Response, status
from psycopg import AsyncConnection, sql
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Operator, Supervisor
from api.deps import Pool
from api.registry.common import (
    ACQUIRE_TIMEOUT_S,
    Cursor,
    IdPath,
    Limit,
    Name,
    NameQuery,
    Page,
    conflict,
    created_response,
    error_responses,
    fetch_one,
    like_pattern,
    list_page,
    log,
    mask_url,
    not_found,
    write_status,
)

router = APIRouter()


class Enterprise(BaseModel):
    enterprise_id: str
    name: str
    webhook_set: bool = Field(description="notices are also pushed to a signed webhook")
    webhook_url: str | None = Field(
        description="where webhook notices go, any credential in it masked; the signing secret is never shown"
    )
    created_at: datetime


class EnterpriseDetail(Enterprise):
    site_count: int


class EnterpriseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


_ENTERPRISES = sql.SQL(
    "SELECT e.enterprise_id, e.name, e.webhook_url, e.created_at FROM enterprises e"
)  # never webhook_secret


def _enterprise(row: dict[str, Any]) -> dict[str, Any]:
    url = row["webhook_url"]
    return {**row, "webhook_set": url is not None, "webhook_url": mask_url(url) if url else None}


@router.get("/enterprises", responses=error_responses("enterprise"), summary="Enterprises, in id order")
async def list_enterprises(
    _principal: Operator,
    pool: Pool,
    q: NameQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Enterprise]:
    filters = [("e.name ILIKE %s", like_pattern(q) if q else None)]
    rows, next_cursor = await list_page(pool, _ENTERPRISES, "e.enterprise_id", filters, cursor, limit)
    return Page[Enterprise](
        items=[Enterprise.model_validate(_enterprise(r)) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/enterprises/{enterprise_id}", responses=error_responses("enterprise", 404), summary="One enterprise"
)
async def get_enterprise(_principal: Operator, pool: Pool, enterprise_id: IdPath) -> EnterpriseDetail:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await _enterprise_detail(conn, enterprise_id)
    if row is None:
        raise not_found("enterprise", enterprise_id)
    return row


async def _enterprise_detail(conn: AsyncConnection[Any], enterprise_id: str) -> EnterpriseDetail | None:
    row = await fetch_one(conn, _ENTERPRISES, "e.enterprise_id", enterprise_id)
    if row is None:
        return None
    cur = await conn.execute("SELECT count(*) FROM sites WHERE enterprise_id = %s", (enterprise_id,))
    count = await cur.fetchone()
    return EnterpriseDetail.model_validate({**_enterprise(row), "site_count": count[0] if count else 0})


@router.put(
    "/enterprises/{enterprise_id}",
    responses={**error_responses("enterprise", 422), **created_response(EnterpriseDetail)},
    summary="Create an enterprise, or rename it",
)
async def put_enterprise(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    enterprise_id: IdPath,
    body: Annotated[EnterpriseBody, Body(examples=[{"name": "Noodle House (Xuhui) Ltd"}])],
) -> EnterpriseDetail:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)"
            " ON CONFLICT (enterprise_id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0)",
            (enterprise_id, body.name),
        )
        created = bool((await cur.fetchone() or (False,))[0])
        detail = await _enterprise_detail(conn, enterprise_id)
    assert detail is not None
    log.info("%s %s enterprise %s", principal.actor, "created" if created else "updated", enterprise_id)
    write_status(response, created)
    return detail


@router.delete(
    "/enterprises/{enterprise_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses("enterprise", 404, 409),
    summary="Delete an enterprise that has no sites",
)
async def delete_enterprise(principal: Supervisor, pool: Pool, enterprise_id: IdPath) -> Response:
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM enterprises WHERE enterprise_id = %s FOR UPDATE", (enterprise_id,)
            )
            if await cur.fetchone() is None:
                raise not_found("enterprise", enterprise_id)
            cur = await conn.execute("SELECT count(*) FROM sites WHERE enterprise_id = %s", (enterprise_id,))
            sites = (await cur.fetchone() or (0,))[0]
            if sites:
                raise conflict(f"enterprise {enterprise_id} still has {sites} site(s)")
            await conn.execute("DELETE FROM enterprises WHERE enterprise_id = %s", (enterprise_id,))
    except psycopg.errors.ForeignKeyViolation:
        raise conflict(
            f"enterprise {enterprise_id} is still referenced (by API keys, devices or cameras)"
        ) from None
    log.info("%s deleted enterprise %s", principal.actor, enterprise_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
