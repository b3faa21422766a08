"""The bureau's staff: list, read (with the sites each handles), add or rename. Marking someone
away is an alert-routing action, in api.actions (PUT /staff/{staff_id}/away)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts import staffing
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
    created_response,
    error_responses,
    fetch_one,
    like_pattern,
    list_page,
    log,
    not_found,
    refused,
    write_status,
)
from vigil.errors import InvalidRequest

router = APIRouter()


class Staff(BaseModel):
    staff_id: str
    name: str
    away: bool
    created_at: datetime
    updated_at: datetime


class SiteSlot(BaseModel):
    site_id: str
    slot: Literal["A", "B", "C"]


class StaffDetail(Staff):
    handles: list[SiteSlot] = Field(description="the sites this person handles, and in which slot")


class StaffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


_STAFF = sql.SQL("SELECT p.staff_id, p.name, p.away, p.created_at, p.updated_at FROM staff p")


@router.get("/staff", responses=error_responses("staff member"), summary="The bureau's staff, in id order")
async def list_staff(
    _principal: Operator,
    pool: Pool,
    q: NameQuery = None,
    away: bool | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Staff]:
    filters = [("p.name ILIKE %s", like_pattern(q) if q else None), ("p.away = %s", away)]
    rows, next_cursor = await list_page(pool, _STAFF, "p.staff_id", filters, cursor, limit)
    return Page[Staff](items=[Staff.model_validate(r) for r in rows], next_cursor=next_cursor)


async def _staff_detail(conn: AsyncConnection[Any], staff_id: str) -> StaffDetail | None:
    row = await fetch_one(conn, _STAFF, "p.staff_id", staff_id)
    if row is None:
        return None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT site_id, slot FROM site_handlers WHERE staff_id = %s ORDER BY site_id, slot", (staff_id,)
        )
        handles = [SiteSlot.model_validate(r) for r in await cur.fetchall()]
    return StaffDetail.model_validate({**row, "handles": handles})


@router.get(
    "/staff/{staff_id}",
    responses=error_responses("staff member", 404),
    summary="One staff member and the sites they handle",
)
async def get_staff(_principal: Operator, pool: Pool, staff_id: IdPath) -> StaffDetail:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        detail = await _staff_detail(conn, staff_id)
    if detail is None:
        raise not_found("staff member", staff_id)
    return detail


@router.put(
    "/staff/{staff_id}",
    responses={**error_responses("staff member", 422), **created_response(StaffDetail)},
    summary="Add a staff member, or rename one (away: PUT /staff/{staff_id}/away)",
)
async def put_staff(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    staff_id: IdPath,
    body: Annotated[StaffBody, Body(examples=[{"name": "Li Wei"}])],
) -> StaffDetail:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM staff WHERE staff_id = %s FOR UPDATE", (staff_id,))
        created = await cur.fetchone() is None
        try:
            await staffing.upsert_staff(conn, staff_id, body.name)
        except InvalidRequest as exc:
            raise refused(str(exc)) from None
        detail = await _staff_detail(conn, staff_id)
    assert detail is not None
    log.info("%s %s staff member %s", principal.actor, "created" if created else "updated", staff_id)
    write_status(response, created)
    return detail
