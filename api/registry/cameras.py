"""Cameras and their zones: list, read, register or update. Cameras are not deleted but disabled
(`enabled: false`), which keeps their alerts' source meaningful.

A source's credentials are shown masked. A PUT that sends a camera's masked source back unchanged
keeps the stored credential, so a read-edit-write round trip does not overwrite it with the mask;
any other source holding the mask is refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Response
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Operator, Supervisor
from api.deps import Pool
from api.registry.common import (
    ACQUIRE_TIMEOUT_S,
    MASK,
    TEXT_REGEX,
    Cursor,
    IdField,
    IdPath,
    IdQuery,
    Limit,
    Page,
    created_response,
    error_responses,
    fetch_one,
    holds_mask,
    list_page,
    lock_site_of,
    log,
    mask_url,
    not_found,
    refused,
    write_status,
)
from vigil.cameras import MAX_ZONES, PUSH_SOURCE, STREAM_SCHEMES, validate_camera, zones_json
from vigil.errors import ConfigurationError

router = APIRouter()

MAX_ZONE_NAME = 100


class Camera(BaseModel):
    camera_id: str
    enterprise_id: str
    site_id: str
    source: str = Field(description="stream URL (credentials masked), video file path, or 'push'")
    source_kind: Literal["stream", "file", "push"]
    sample_fps: float
    zones: list[Any] = Field(
        description='[{"name": …, "points": [[x, y], …], "codes": [violation code, …], "exclude": true?}]'
    )
    enabled: bool
    created_at: datetime
    updated_at: datetime


class CameraBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enterprise_id: IdField
    site_id: IdField
    source: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2048,
            pattern=TEXT_REGEX,
            description="rtsp(s):// or http(s):// stream, an absolute video file path, or 'push' (an edge"
            " box posts frames); a masked source sent back unchanged keeps the stored credential",
        ),
    ]
    # Bounds documented, but checked by vigil.cameras so the refusal carries its reason.
    sample_fps: float = Field(
        default=2.0,
        description="frames analysed per second, in (0, 30]",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 30},
    )
    zones: list[Any] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_ZONES},
        description="polygons in normalised image coordinates (0..1), each with the violation codes that"
        ' count inside it (none: every code); no zones: the whole frame. A zone with "exclude": true is'
        " where its codes never count (the stove for FIRE_OPEN_FLAME in a kitchen)",
    )
    enabled: bool = True


_CAMERAS = sql.SQL(
    "SELECT c.camera_id, c.enterprise_id, c.site_id, c.source, c.sample_fps, c.zones, c.enabled,"
    " c.created_at, c.updated_at FROM cameras c"
)


def _source_kind(source: str) -> Literal["stream", "file", "push"]:
    if source == PUSH_SOURCE:
        return "push"
    try:
        scheme = urlsplit(source).scheme
    except ValueError:
        return "stream"
    return "stream" if scheme in STREAM_SCHEMES else "file"


def _camera(row: dict[str, Any]) -> Camera:
    return Camera.model_validate(
        {
            **row,
            "source": mask_url(row["source"]),
            "source_kind": _source_kind(row["source"]),
            "sample_fps": round(float(row["sample_fps"]), 4),  # a `real`: no float32 noise
            "zones": row["zones"] if isinstance(row["zones"], list) else [],
        }
    )


@router.get(
    "/cameras", responses=error_responses("camera"), summary="Cameras, in id order (credentials masked)"
)
async def list_cameras(
    _principal: Operator,
    pool: Pool,
    enterprise_id: IdQuery = None,
    site_id: IdQuery = None,
    enabled: bool | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Camera]:
    filters = [
        ("c.enterprise_id = %s", enterprise_id),
        ("c.site_id = %s", site_id),
        ("c.enabled = %s", enabled),
    ]
    rows, next_cursor = await list_page(pool, _CAMERAS, "c.camera_id", filters, cursor, limit)
    return Page[Camera](items=[_camera(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/cameras/{camera_id}",
    responses=error_responses("camera", 404),
    summary="One camera (credentials masked)",
)
async def get_camera(_principal: Operator, pool: Pool, camera_id: IdPath) -> Camera:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await fetch_one(conn, _CAMERAS, "c.camera_id", camera_id)
    if row is None:
        raise not_found("camera", camera_id)
    return _camera(row)


@router.put(
    "/cameras/{camera_id}",
    responses={**error_responses("camera", 422), **created_response(Camera)},
    summary="Register a camera or update it (source and zones are checked; disable with enabled: false)",
)
async def put_camera(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    camera_id: IdPath,
    body: Annotated[
        CameraBody,
        Body(
            examples=[
                {
                    "enterprise_id": "noodle-house",
                    "site_id": "noodle-house-xuhui",
                    "source": "rtsp://viewer:secret@10.0.4.21:554/stream1",
                    "sample_fps": 2,
                    "zones": [
                        {
                            "name": "prep",
                            "points": [[0.1, 0.2], [0.9, 0.2], [0.9, 0.95], [0.1, 0.95]],
                            "codes": ["KITCHEN_NO_MASK"],
                        },
                        {
                            "name": "stove",
                            "points": [[0.6, 0.1], [0.95, 0.1], [0.95, 0.5], [0.6, 0.5]],
                            "codes": ["FIRE_OPEN_FLAME"],
                            "exclude": True,
                        },
                    ],
                    "enabled": True,
                }
            ]
        ),
    ],
) -> Camera:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT source FROM cameras WHERE camera_id = %s FOR UPDATE", (camera_id,))
        stored = await cur.fetchone()
        source = body.source
        if stored is not None and stored[0] != source and mask_url(stored[0]) == source:
            source = stored[0]  # the masked source sent back unchanged: keep the real credential
        elif holds_mask(source):
            raise refused(f"source holds a masked credential ({MASK}): send the real one")
        try:
            camera = validate_camera(
                enterprise_id=body.enterprise_id, site_id=body.site_id, camera_id=camera_id, source=source,
                sample_fps=body.sample_fps, zones=body.zones, enabled=body.enabled,
            )  # fmt: skip
        except ConfigurationError as exc:
            raise refused(str(exc).replace(source, body.source)) from None
        for zone in camera.zones:  # stored as JSON: bounded, and no NUL (jsonb refuses \u0000)
            if len(zone.name) > MAX_ZONE_NAME or "\x00" in zone.name:
                raise refused(f"zone names must be at most {MAX_ZONE_NAME} characters, without NUL")
        await lock_site_of(conn, body.site_id, body.enterprise_id)
        async with conn.cursor(row_factory=dict_row) as dcur:
            await dcur.execute(
                "INSERT INTO cameras (camera_id, enterprise_id, site_id, source, sample_fps, zones, enabled)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (camera_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
                " site_id = EXCLUDED.site_id, source = EXCLUDED.source, sample_fps = EXCLUDED.sample_fps,"
                " zones = EXCLUDED.zones, enabled = EXCLUDED.enabled, updated_at = now()"
                " RETURNING camera_id, enterprise_id, site_id, source, sample_fps, zones, enabled,"
                " created_at, updated_at",
                (
                    camera_id, body.enterprise_id, body.site_id, camera.source, body.sample_fps,
                    Jsonb(zones_json(camera.zones)), body.enabled,
                ),
            )  # fmt: skip
            row = await dcur.fetchone()
    assert row is not None
    log.info("%s %s camera %s", principal.actor, "updated" if stored else "created", camera_id)
    write_status(response, stored is None)
    return _camera(row)
