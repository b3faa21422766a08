"""Devices: list, read, register or update (its site must belong to its enterprise), and delete
(only while no active alert is raised on it; its closed alerts stay as history, naming it by id)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Response, status
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
)

from api.auth import Operator, Supervisor
from api.deps import Pool
from api.registry.common import (
    ACQUIRE_TIMEOUT_S,
    ACTIVE_ALERTS,
    Cursor,
    IdField,
    IdPath,
    IdQuery,
    Limit,
    Page,
    conflict,
    created_response,
    error_responses,
    fetch_one,
    list_page,
    lock_site_of,
    log,
    not_found,
    refused,
    write_status,
)
from vigil.errors import InvalidRequest, NotFound
from vigil.keys import issue_device_token, revoke_device_token
from vigil.registry import check_device_profile, published_profiles

router = APIRouter()

# A device's attributes: a flat object of scalars, bounded in count and size.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTES_BYTES = 4096

AttributeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00]*$")]
    | StrictBool
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    | StrictFloat  # NaN and infinities are refused by the route (see put_device)
    | None
)


class Device(BaseModel):
    device_id: str
    enterprise_id: str
    site_id: str
    profile: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DeviceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enterprise_id: IdField
    site_id: IdField
    profile: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="e.g. freezer, chiller, elevator")
    ]
    attributes: Annotated[
        dict[AttributeKey, AttributeValue],
        Field(
            max_length=MAX_ATTRIBUTES,
            description=f"a flat object of scalars: at most {MAX_ATTRIBUTES} keys and"
            f" {MAX_ATTRIBUTES_BYTES} bytes as JSON (e.g. limits such as max_temp_c)",
        ),
    ] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(orjson.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
        return value


_DEVICES = sql.SQL(
    "SELECT d.device_id, d.enterprise_id, d.site_id, d.profile, d.attributes, d.created_at, d.updated_at"
    " FROM devices d"
)


@router.get("/devices", responses=error_responses("device"), summary="Devices, in id order")
async def list_devices(
    _principal: Operator,
    pool: Pool,
    enterprise_id: IdQuery = None,
    site_id: IdQuery = None,
    profile: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Device]:
    filters = [
        ("d.enterprise_id = %s", enterprise_id),
        ("d.site_id = %s", site_id),
        ("d.profile = %s", profile),
    ]
    rows, next_cursor = await list_page(pool, _DEVICES, "d.device_id", filters, cursor, limit)
    return Page[Device](items=[Device.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/devices/{device_id}", responses=error_responses("device", 404), summary="One device")
async def get_device(_principal: Operator, pool: Pool, device_id: IdPath) -> Device:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await fetch_one(conn, _DEVICES, "d.device_id", device_id)
    if row is None:
        raise not_found("device", device_id)
    return Device.model_validate(row)


@router.put(
    "/devices/{device_id}",
    responses={**error_responses("device", 422), **created_response(Device)},
    summary="Register a device or update it (its site must belong to its enterprise)",
)
async def put_device(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    device_id: IdPath,
    body: Annotated[
        DeviceBody,
        Body(
            examples=[
                {
                    "enterprise_id": "noodle-house",
                    "site_id": "noodle-house-xuhui",
                    "profile": "freezer",
                    "attributes": {"max_temp_c": -18, "model": "Haier DW-40"},
                }
            ]
        ),
    ],
) -> Device:
    # Refused here rather than by the model: a validation error echoes its input, and FastAPI's
    # default handler cannot render NaN as JSON (a 500 instead of a 422).
    if any(isinstance(v, float) and not math.isfinite(v) for v in body.attributes.values()):
        raise refused("attributes: numbers must be finite (no NaN or Infinity)")
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await check_profile(conn, body.profile, body.attributes)
        await lock_site_of(conn, body.site_id, body.enterprise_id)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "INSERT INTO devices (device_id, enterprise_id, site_id, profile, attributes)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (device_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
                " site_id = EXCLUDED.site_id, profile = EXCLUDED.profile,"
                " attributes = EXCLUDED.attributes, updated_at = now()"
                " RETURNING device_id, enterprise_id, site_id, profile, attributes, created_at, updated_at,"
                " (xmax = 0) AS created",
                (device_id, body.enterprise_id, body.site_id, body.profile, Jsonb(body.attributes)),
            )
            row = await cur.fetchone()
    assert row is not None
    log.info("%s %s device %s", principal.actor, "created" if row["created"] else "updated", device_id)
    write_status(response, bool(row["created"]))
    return Device.model_validate(row)


async def check_profile(conn: Any, profile: str, attributes: dict[str, Any]) -> None:
    """Refuse (422) an unknown profile or an attribute of the wrong type, against the profiles the
    shell and the telemetry detector publish (`device_profiles`). Until any are published (a new
    database before its first `vigil devices register` or detector start) nothing can be checked."""
    catalogue = await published_profiles(conn)
    if not catalogue:
        log.warning("no device profiles published yet; profile %r of a device not checked", profile)
        return
    try:
        check_device_profile(profile, attributes, catalogue)
    except InvalidRequest as exc:
        raise refused(str(exc)) from None


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses("device", 404, 409),
    summary="Delete a device that has no active alert (its closed alerts stay as history)",
)
async def delete_device(principal: Supervisor, pool: Pool, device_id: IdPath) -> Response:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s FOR UPDATE", (device_id,))
        if await cur.fetchone() is None:
            raise not_found("device", device_id)
        cur = await conn.execute(
            f"SELECT alert_id FROM alerts WHERE {ACTIVE_ALERTS} AND source_kind = 'device'"  # noqa: S608
            " AND source_id = %s ORDER BY alert_id LIMIT 5",
            (device_id,),
        )
        active = [r[0] for r in await cur.fetchall()]
        if active:
            raise conflict(
                f"device {device_id} has active alerts ({', '.join(active)}); close or dismiss them first"
            )
        await conn.execute("DELETE FROM devices WHERE device_id = %s", (device_id,))
    log.info("%s deleted device %s", principal.actor, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class DeviceTokenIssued(BaseModel):
    device_id: str
    token_id: str
    token: str = Field(description="the ThingsBoard access token (MQTT username); shown this once")


@router.post(
    "/devices/{device_id}/token",
    status_code=201,
    responses=error_responses("device", 404),
    summary="Issue a ThingsBoard access token for a device (revokes its earlier one); shown once",
)
async def issue_token(principal: Supervisor, pool: Pool, device_id: IdPath) -> DeviceTokenIssued:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        try:
            token_id, token = await issue_device_token(conn, device_id, created_by=principal.actor)
        except NotFound:
            raise not_found("device", device_id) from None
    log.info("%s issued access token %s for device %s", principal.actor, token_id, device_id)
    return DeviceTokenIssued(device_id=device_id, token_id=token_id, token=token)


@router.delete(
    "/devices/{device_id}/token",
    status_code=204,
    response_class=Response,
    responses=error_responses("device", 404),
    summary="Revoke a device's ThingsBoard access token",
)
async def revoke_token(principal: Supervisor, pool: Pool, device_id: IdPath) -> Response:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        try:
            revoked = await revoke_device_token(conn, device_id)
        except NotFound:
            raise not_found("device", device_id) from None
    log.info("%s revoked %d access token(s) of device %s", principal.actor, revoked, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
