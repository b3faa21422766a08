"""Registry management (enterprises, sites, devices, cameras, staff) and per-site status.

Reads need an operator (or supervisor), writes a supervisor; enterprise keys reach none of it.

- A PUT creates or replaces the whole record: 201 when it created it, 200 when it updated it.
  What a body refers to (an enterprise, a site, a staff member) must already exist, or the body is
  refused (422); an unknown id in the path of a GET or DELETE is a 404.
- Lists are keyset-paginated in id order: pass a page's `next_cursor` as `cursor` for the next.
- Secrets stay in the database. An enterprise's webhook signing secret is never selected. The
  password in a camera or webhook URL (`rtsp://user:pass@host`), and the value of a query
  parameter named like a credential (`?password=…`, `?token=…`), is shown as `***`. A PUT that
  sends a camera's masked source back unchanged keeps the stored credential, so a read-edit-write
  round trip does not overwrite it with the mask; any other source holding the mask is refused.
- Deleting: an enterprise only while it has no sites (409 otherwise, and while API keys or other
  rows still name it). A device only while no active alert is raised on it (409: close or dismiss
  those first); its closed alerts stay as history, naming it by id. Cameras are not deleted but
  disabled (`enabled: false`), which keeps their alerts' source meaningful.
- A site moves to another enterprise only while no device, camera or active alert is on it (409).
- `GET /sites/status` is a fixed path, so a site with the id `status` cannot be created here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, LiteralString, TypeVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import orjson
import psycopg
from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from psycopg import AsyncConnection, sql
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

from alerts import staffing
from api.auth import Operator, Supervisor
from api.deps import Pool
from api.models import ErrorBody
from vigil.cameras import MAX_ZONES, PUSH_SOURCE, STREAM_SCHEMES, validate_camera, zones_json
from vigil.errors import ConfigurationError, InvalidRequest, NotFound
from vigil.events import ID_PATTERN

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["registry"])

# How long a request waits for a pooled connection before the API answers 503.
_ACQUIRE_TIMEOUT_S = 5.0

# The registry's id CHECK constraint. Also keeps NUL and oversized values out of every query.
_ID = rf"^{ID_PATTERN.pattern}$"
# Free text: no control characters (PostgreSQL text refuses NUL; the rest have no place in a name).
_TEXT = r"^[^\x00-\x1f\x7f]*$"
_MASK = "***"
# Query parameters whose values are credentials (compared lower-case).
_SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "access_token", "auth", "key", "apikey",
     "api_key", "sig", "signature"}
)  # fmt: skip
# A device's attributes: a flat object of scalars, bounded in count and size.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTES_BYTES = 4096
MAX_ZONE_NAME = 100
# The active alert states (the one-open-alert index's predicate, spelled the same way).
_ACTIVE = "status NOT IN ('closed', 'dismissed')"

IdPath = Annotated[str, Path(pattern=_ID, description="1-64 of A-Z a-z 0-9 _ -")]
IdField = Annotated[str, Field(pattern=_ID)]
IdQuery = Annotated[str | None, Query(pattern=_ID)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_TEXT)]
District = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_TEXT)
]
NameQuery = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=_TEXT, description="name contains (any case)")
]
DistrictQuery = Annotated[str | None, Query(min_length=1, max_length=100, pattern=_TEXT)]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[
    str | None, Query(pattern=_ID, description="next_cursor from the previous page (the last id on it)")
]

AttributeKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00]*$")]
    | StrictBool
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    | StrictFloat  # NaN and infinities are refused by the route (see put_device)
    | None
)

T = TypeVar("T")


def _responses(what: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "no valid credential",
        403: "not allowed for this role",
        404: f"no such {what}",
        409: f"the {what}'s current state does not allow this",
        422: "refused content, with the reason",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in (401, 403, *codes)}


def _created(what: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {201: {"model": what, "description": "created"}}


def _not_found(what: str, key: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {key} not found")


def _refused(detail: str) -> HTTPException:
    return HTTPException(422, detail)  # the constant's name differs across Starlette versions


def _conflict(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail)


# ---------------------------------------------------------------------------------------- secrets


def mask_url(url: str) -> str:
    """`url` with its password, and the values of credential-like query parameters, shown as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (a hand-edited row): show nothing of it
        return _MASK
    if not parts.scheme or not parts.netloc:  # a file path, 'push'
        return url
    netloc, found = parts.netloc, False
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc, found = f"{userinfo.partition(':')[0]}:{_MASK}@{hostport}", True
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, sep, _value = pair.partition("=")
        if sep and unquote_plus(name).lower() in _SECRET_PARAMS:
            pair, found = f"{name}={_MASK}", True
        pairs.append(pair)
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(pairs))) if found else url


def _holds_mask(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.password == _MASK:
        return True
    return any(
        unquote_plus(name).lower() in _SECRET_PARAMS and unquote_plus(value) == _MASK
        for name, _, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )


# ----------------------------------------------------------------------------------------- models


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


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


class Handler(BaseModel):
    staff_id: str
    name: str
    away: bool


class Handlers(BaseModel):
    A: Handler | None = Field(default=None, description="primary handler")
    B: Handler | None = Field(default=None, description="backup, while A is away")
    C: Handler | None = Field(default=None, description="specialist: difficult and escalated alerts")


class Site(BaseModel):
    site_id: str
    enterprise_id: str
    name: str
    district: str | None
    created_at: datetime
    handlers: Handlers


class SiteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enterprise_id: IdField
    name: Name
    district: District | None = None


class HandlersBody(BaseModel):
    """Each slot given is set (a staff id) or cleared (null); a slot left out is kept."""

    model_config = ConfigDict(extra="forbid")
    A: IdField | None = None
    B: IdField | None = None
    C: IdField | None = None


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


class Camera(BaseModel):
    camera_id: str
    enterprise_id: str
    site_id: str
    source: str = Field(description="stream URL (credentials masked), video file path, or 'push'")
    source_kind: Literal["stream", "file", "push"]
    sample_fps: float
    zones: list[Any] = Field(description='[{"name": …, "points": [[x, y], …], "codes": [violation code, …]}]')
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
            pattern=_TEXT,
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
        " count inside it (none: every code); no zones: the whole frame",
    )
    enabled: bool = True


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


class CameraStatus(BaseModel):
    camera_id: str
    enabled: bool
    online: bool = Field(description="false while a CAMERA_OFFLINE alert on it is active")


class DeviceStatus(BaseModel):
    device_id: str
    profile: str
    online: bool = Field(description="false while a DEVICE_OFFLINE alert on it is active")


class OpenAlerts(BaseModel):
    total: int
    tier_1: int = Field(description="instant warnings")
    tier_2: int = Field(description="rectify by deadline")
    tier_3: int = Field(description="routine")


class SiteStatus(BaseModel):
    site_id: str
    enterprise_id: str
    name: str
    district: str | None
    handlers: Handlers
    cameras: list[CameraStatus]
    devices: list[DeviceStatus]
    open_alerts: OpenAlerts = Field(description="alerts not yet closed or dismissed, by tier")


# ---------------------------------------------------------------------------------------- queries
# Fixed fragments only; every value travels as a query parameter.

_ENTERPRISES = sql.SQL(
    "SELECT e.enterprise_id, e.name, e.webhook_url, e.created_at FROM enterprises e"
)  # never webhook_secret
_SITES = sql.SQL(
    "SELECT s.site_id, s.enterprise_id, s.name, s.district, s.created_at,"
    " COALESCE((SELECT jsonb_object_agg(h.slot, jsonb_build_object("
    "'staff_id', st.staff_id, 'name', st.name, 'away', st.away))"
    " FROM site_handlers h JOIN staff st ON st.staff_id = h.staff_id WHERE h.site_id = s.site_id),"
    " '{}'::jsonb) AS handlers FROM sites s"
)
_DEVICES = sql.SQL(
    "SELECT d.device_id, d.enterprise_id, d.site_id, d.profile, d.attributes, d.created_at, d.updated_at"
    " FROM devices d"
)
_CAMERAS = sql.SQL(
    "SELECT c.camera_id, c.enterprise_id, c.site_id, c.source, c.sample_fps, c.zones, c.enabled,"
    " c.created_at, c.updated_at FROM cameras c"
)
_STAFF = sql.SQL("SELECT p.staff_id, p.name, p.away, p.created_at, p.updated_at FROM staff p")

Filters = Sequence[tuple[LiteralString, Any]]


async def _page(
    conn: AsyncConnection[Any],
    select: sql.SQL,
    key: LiteralString,
    filters: Filters,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `select` in `key` order, and the cursor of the next page (None on the last).
    `filters` are fixed SQL fragments (one %s each) with a value each; a None value leaves its
    fragment out."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    for fragment, value in filters:
        if value is not None:
            where.append(sql.SQL(fragment))
            params.append(value)
    if cursor is not None:
        where.append(sql.SQL(key) + sql.SQL(" > %s"))
        params.append(cursor)
    query = sql.SQL("{} {} ORDER BY {} LIMIT %s").format(
        select, sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""), sql.SQL(key)
    )
    params.append(limit + 1)  # one extra row says whether there is a next page
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page = rows[:limit]
    return page, (str(page[-1][key.split(".")[-1]]) if len(rows) > limit else None)


async def _list(
    pool: Pool, select: sql.SQL, key: LiteralString, filters: Filters, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        return await _page(conn, select, key, filters, cursor, limit)


async def _one(
    conn: AsyncConnection[Any], select: sql.SQL, key: LiteralString, value: str
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.SQL("{} WHERE {} = %s").format(select, sql.SQL(key)), [value])
        return await cur.fetchone()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _enterprise(row: dict[str, Any]) -> dict[str, Any]:
    url = row["webhook_url"]
    return {**row, "webhook_set": url is not None, "webhook_url": mask_url(url) if url else None}


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


def _write_status(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


# ------------------------------------------------------------------------------------ enterprises


@router.get("/enterprises", responses=_responses("enterprise"), summary="Enterprises, in id order")
async def list_enterprises(
    _principal: Operator,
    pool: Pool,
    q: NameQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Enterprise]:
    rows, next_cursor = await _list(
        pool, _ENTERPRISES, "e.enterprise_id", [("e.name ILIKE %s", _like(q) if q else None)], cursor, limit
    )
    return Page[Enterprise](
        items=[Enterprise.model_validate(_enterprise(r)) for r in rows], next_cursor=next_cursor
    )


@router.get("/enterprises/{enterprise_id}", responses=_responses("enterprise", 404), summary="One enterprise")
async def get_enterprise(_principal: Operator, pool: Pool, enterprise_id: IdPath) -> EnterpriseDetail:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        row = await _enterprise_detail(conn, enterprise_id)
    if row is None:
        raise _not_found("enterprise", enterprise_id)
    return row


async def _enterprise_detail(conn: AsyncConnection[Any], enterprise_id: str) -> EnterpriseDetail | None:
    row = await _one(conn, _ENTERPRISES, "e.enterprise_id", enterprise_id)
    if row is None:
        return None
    cur = await conn.execute("SELECT count(*) FROM sites WHERE enterprise_id = %s", (enterprise_id,))
    count = await cur.fetchone()
    return EnterpriseDetail.model_validate({**_enterprise(row), "site_count": count[0] if count else 0})


@router.put(
    "/enterprises/{enterprise_id}",
    responses={**_responses("enterprise", 422), **_created(EnterpriseDetail)},
    summary="Create an enterprise, or rename it",
)
async def put_enterprise(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    enterprise_id: IdPath,
    body: Annotated[EnterpriseBody, Body(examples=[{"name": "Noodle House (Xuhui) Ltd"}])],
) -> EnterpriseDetail:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)"
            " ON CONFLICT (enterprise_id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0)",
            (enterprise_id, body.name),
        )
        created = bool((await cur.fetchone() or (False,))[0])
        detail = await _enterprise_detail(conn, enterprise_id)
    assert detail is not None
    log.info("%s %s enterprise %s", principal.actor, "created" if created else "updated", enterprise_id)
    _write_status(response, created)
    return detail


@router.delete(
    "/enterprises/{enterprise_id}",
    status_code=204,
    response_class=Response,
    responses=_responses("enterprise", 404, 409),
    summary="Delete an enterprise that has no sites",
)
async def delete_enterprise(principal: Supervisor, pool: Pool, enterprise_id: IdPath) -> Response:
    try:
        async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM enterprises WHERE enterprise_id = %s FOR UPDATE", (enterprise_id,)
            )
            if await cur.fetchone() is None:
                raise _not_found("enterprise", enterprise_id)
            cur = await conn.execute("SELECT count(*) FROM sites WHERE enterprise_id = %s", (enterprise_id,))
            sites = (await cur.fetchone() or (0,))[0]
            if sites:
                raise _conflict(f"enterprise {enterprise_id} still has {sites} site(s)")
            await conn.execute("DELETE FROM enterprises WHERE enterprise_id = %s", (enterprise_id,))
    except psycopg.errors.ForeignKeyViolation:
        raise _conflict(
            f"enterprise {enterprise_id} is still referenced (by API keys, devices or cameras)"
        ) from None
    log.info("%s deleted enterprise %s", principal.actor, enterprise_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ------------------------------------------------------------------------------------------ sites


@router.get("/sites", responses=_responses("site"), summary="Sites with their handlers, in id order")
async def list_sites(
    _principal: Operator,
    pool: Pool,
    enterprise_id: IdQuery = None,
    district: DistrictQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Site]:
    rows, next_cursor = await _list(
        pool,
        _SITES,
        "s.site_id",
        [("s.enterprise_id = %s", enterprise_id), ("s.district = %s", district)],
        cursor,
        limit,
    )
    return Page[Site](items=[Site.model_validate(r) for r in rows], next_cursor=next_cursor)


# Declared before /sites/{site_id}, which would otherwise take "status" for a site id.
@router.get(
    "/sites/status",
    responses=_responses("site"),
    summary="Per-site status for the dashboard: cameras and devices online, open alerts by tier, handlers",
)
async def sites_status(
    _principal: Operator,
    pool: Pool,
    enterprise_id: IdQuery = None,
    district: DistrictQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: Cursor = None,
) -> Page[SiteStatus]:
    filters = [("s.enterprise_id = %s", enterprise_id), ("s.district = %s", district)]
    async with (
        pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        # One snapshot: a camera and the alert that says it is offline are read together.
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows, next_cursor = await _page(conn, _SITES, "s.site_id", filters, cursor, limit)
        site_ids = [r["site_id"] for r in rows]
        await cur.execute(
            "SELECT camera_id, site_id, enabled FROM cameras WHERE site_id = ANY(%s) ORDER BY camera_id",
            (site_ids,),
        )
        cameras = await cur.fetchall()
        await cur.execute(
            "SELECT device_id, site_id, profile FROM devices WHERE site_id = ANY(%s) ORDER BY device_id",
            (site_ids,),
        )
        devices = await cur.fetchall()
        # Matched by source, not by site: a camera moved since keeps its alert.
        await cur.execute(
            f"SELECT source_kind, source_id FROM alerts WHERE {_ACTIVE} AND ("  # noqa: S608  # constant
            "(source_kind = 'camera' AND code = 'CAMERA_OFFLINE' AND source_id = ANY(%s))"
            " OR (source_kind = 'device' AND code = 'DEVICE_OFFLINE' AND source_id = ANY(%s)))",
            ([c[0] for c in cameras], [d[0] for d in devices]),
        )
        offline = {(kind, source) for kind, source in await cur.fetchall()}
        await cur.execute(
            f"SELECT site_id, tier, count(*) FROM alerts WHERE {_ACTIVE} AND site_id = ANY(%s)"  # noqa: S608
            " GROUP BY site_id, tier",
            (site_ids,),
        )
        tiers: dict[str, dict[int, int]] = {}
        for site_id, tier, count in await cur.fetchall():
            tiers.setdefault(site_id, {})[int(tier)] = int(count)

    items = []
    for row in rows:
        site_id, by_tier = row["site_id"], tiers.get(row["site_id"], {})
        items.append(
            SiteStatus(
                site_id=site_id,
                enterprise_id=row["enterprise_id"],
                name=row["name"],
                district=row["district"],
                handlers=Handlers.model_validate(row["handlers"]),
                cameras=[
                    CameraStatus(camera_id=c, enabled=enabled, online=("camera", c) not in offline)
                    for c, s, enabled in cameras
                    if s == site_id
                ],
                devices=[
                    DeviceStatus(device_id=d, profile=profile, online=("device", d) not in offline)
                    for d, s, profile in devices
                    if s == site_id
                ],
                open_alerts=OpenAlerts(
                    total=sum(by_tier.values()),
                    tier_1=by_tier.get(1, 0),
                    tier_2=by_tier.get(2, 0),
                    tier_3=by_tier.get(3, 0),
                ),
            )
        )
    return Page[SiteStatus](items=items, next_cursor=next_cursor)


@router.get("/sites/{site_id}", responses=_responses("site", 404), summary="One site with its handlers")
async def get_site(_principal: Operator, pool: Pool, site_id: IdPath) -> Site:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        row = await _one(conn, _SITES, "s.site_id", site_id)
    if row is None:
        raise _not_found("site", site_id)
    return Site.model_validate(row)


@router.put(
    "/sites/{site_id}",
    responses={**_responses("site", 409, 422), **_created(Site)},
    summary="Create or update a site (its enterprise must exist)",
)
async def put_site(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    site_id: IdPath,
    body: Annotated[
        SiteBody,
        Body(examples=[{"enterprise_id": "noodle-house", "name": "Central kitchen", "district": "Xuhui"}]),
    ],
) -> Site:
    if site_id == "status":
        raise _refused("'status' is reserved (GET /api/v1/sites/status); choose another site id")
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        # Held until commit: the enterprise cannot be deleted under the new site.
        cur = await conn.execute(
            "SELECT 1 FROM enterprises WHERE enterprise_id = %s FOR KEY SHARE", (body.enterprise_id,)
        )
        if await cur.fetchone() is None:
            raise _refused(f"enterprise {body.enterprise_id} not found")
        cur = await conn.execute("SELECT enterprise_id FROM sites WHERE site_id = %s FOR UPDATE", (site_id,))
        existing = await cur.fetchone()
        if existing is not None and existing[0] != body.enterprise_id:
            await _check_site_movable(conn, site_id, existing[0])
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name, district) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (site_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " name = EXCLUDED.name, district = EXCLUDED.district",
            (site_id, body.enterprise_id, body.name, body.district),
        )
        row = await _one(conn, _SITES, "s.site_id", site_id)
    assert row is not None
    log.info("%s %s site %s", principal.actor, "updated" if existing else "created", site_id)
    _write_status(response, existing is None)
    return Site.model_validate(row)


async def _check_site_movable(conn: AsyncConnection[Any], site_id: str, owner: str) -> None:
    for what, query in (
        ("devices", "SELECT count(*) FROM devices WHERE site_id = %s"),
        ("cameras", "SELECT count(*) FROM cameras WHERE site_id = %s"),
        ("active alerts", f"SELECT count(*) FROM alerts WHERE {_ACTIVE} AND site_id = %s"),  # noqa: S608
    ):
        cur = await conn.execute(query, (site_id,))
        count = (await cur.fetchone() or (0,))[0]
        if count:
            raise _conflict(
                f"site {site_id} has {count} {what} of enterprise {owner}; move or close them"
                " before moving the site to another enterprise"
            )


@router.put(
    "/sites/{site_id}/handlers",
    responses=_responses("site", 404, 422),
    summary="Set the site's A/B/C handlers (null clears a slot; a slot left out is kept)",
)
async def put_handlers(
    principal: Supervisor,
    pool: Pool,
    site_id: IdPath,
    body: Annotated[
        HandlersBody,
        Body(examples=[{"A": "inspector-li", "B": "inspector-zhao", "C": None}]),
    ],
) -> Site:
    slots = {slot: getattr(body, slot) for slot in sorted(body.model_fields_set)}
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM sites WHERE site_id = %s FOR UPDATE", (site_id,))
        if await cur.fetchone() is None:
            raise _not_found("site", site_id)
        try:
            await staffing.set_handlers(conn, site_id, slots)
        except (NotFound, InvalidRequest) as exc:  # the site exists: what is missing is a staff member
            raise _refused(str(exc)) from None
        row = await _one(conn, _SITES, "s.site_id", site_id)
    assert row is not None
    log.info("%s set handlers of site %s: %s", principal.actor, site_id, slots)
    return Site.model_validate(row)


# ---------------------------------------------------------------------------------------- devices


@router.get("/devices", responses=_responses("device"), summary="Devices, in id order")
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
    rows, next_cursor = await _list(pool, _DEVICES, "d.device_id", filters, cursor, limit)
    return Page[Device](items=[Device.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/devices/{device_id}", responses=_responses("device", 404), summary="One device")
async def get_device(_principal: Operator, pool: Pool, device_id: IdPath) -> Device:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        row = await _one(conn, _DEVICES, "d.device_id", device_id)
    if row is None:
        raise _not_found("device", device_id)
    return Device.model_validate(row)


async def _lock_site_of(conn: AsyncConnection[Any], site_id: str, enterprise_id: str) -> None:
    """Refuse a site that does not exist or is another enterprise's; hold it (FOR SHARE) so it cannot
    move to another enterprise before the caller commits."""
    cur = await conn.execute("SELECT enterprise_id FROM sites WHERE site_id = %s FOR SHARE", (site_id,))
    row = await cur.fetchone()
    if row is None:
        raise _refused(f"site {site_id} not found")
    if row[0] != enterprise_id:
        raise _refused(f"site {site_id} belongs to enterprise {row[0]}, not {enterprise_id}")


@router.put(
    "/devices/{device_id}",
    responses={**_responses("device", 422), **_created(Device)},
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
        raise _refused("attributes: numbers must be finite (no NaN or Infinity)")
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await _lock_site_of(conn, body.site_id, body.enterprise_id)
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
    _write_status(response, bool(row["created"]))
    return Device.model_validate(row)


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    response_class=Response,
    responses=_responses("device", 404, 409),
    summary="Delete a device that has no active alert (its closed alerts stay as history)",
)
async def delete_device(principal: Supervisor, pool: Pool, device_id: IdPath) -> Response:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s FOR UPDATE", (device_id,))
        if await cur.fetchone() is None:
            raise _not_found("device", device_id)
        cur = await conn.execute(
            f"SELECT alert_id FROM alerts WHERE {_ACTIVE} AND source_kind = 'device'"  # noqa: S608
            " AND source_id = %s ORDER BY alert_id LIMIT 5",
            (device_id,),
        )
        active = [r[0] for r in await cur.fetchall()]
        if active:
            raise _conflict(
                f"device {device_id} has active alerts ({', '.join(active)}); close or dismiss them first"
            )
        await conn.execute("DELETE FROM devices WHERE device_id = %s", (device_id,))
    log.info("%s deleted device %s", principal.actor, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------- cameras


@router.get("/cameras", responses=_responses("camera"), summary="Cameras, in id order (credentials masked)")
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
    rows, next_cursor = await _list(pool, _CAMERAS, "c.camera_id", filters, cursor, limit)
    return Page[Camera](items=[_camera(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/cameras/{camera_id}", responses=_responses("camera", 404), summary="One camera (credentials masked)"
)
async def get_camera(_principal: Operator, pool: Pool, camera_id: IdPath) -> Camera:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        row = await _one(conn, _CAMERAS, "c.camera_id", camera_id)
    if row is None:
        raise _not_found("camera", camera_id)
    return _camera(row)


@router.put(
    "/cameras/{camera_id}",
    responses={**_responses("camera", 422), **_created(Camera)},
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
                        }
                    ],
                    "enabled": True,
                }
            ]
        ),
    ],
) -> Camera:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT source FROM cameras WHERE camera_id = %s FOR UPDATE", (camera_id,))
        stored = await cur.fetchone()
        source = body.source
        if stored is not None and stored[0] != source and mask_url(stored[0]) == source:
            source = stored[0]  # the masked source sent back unchanged: keep the real credential
        elif _holds_mask(source):
            raise _refused(f"source holds a masked credential ({_MASK}): send the real one")
        try:
            camera = validate_camera(
                enterprise_id=body.enterprise_id, site_id=body.site_id, camera_id=camera_id, source=source,
                sample_fps=body.sample_fps, zones=body.zones, enabled=body.enabled,
            )  # fmt: skip
        except ConfigurationError as exc:
            raise _refused(str(exc).replace(source, body.source)) from None
        for zone in camera.zones:  # stored as JSON: bounded, and no NUL (jsonb refuses \u0000)
            if len(zone.name) > MAX_ZONE_NAME or "\x00" in zone.name:
                raise _refused(f"zone names must be at most {MAX_ZONE_NAME} characters, without NUL")
        await _lock_site_of(conn, body.site_id, body.enterprise_id)
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
    _write_status(response, stored is None)
    return _camera(row)


# ------------------------------------------------------------------------------------------ staff


@router.get("/staff", responses=_responses("staff member"), summary="The bureau's staff, in id order")
async def list_staff(
    _principal: Operator,
    pool: Pool,
    q: NameQuery = None,
    away: bool | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Staff]:
    filters = [("p.name ILIKE %s", _like(q) if q else None), ("p.away = %s", away)]
    rows, next_cursor = await _list(pool, _STAFF, "p.staff_id", filters, cursor, limit)
    return Page[Staff](items=[Staff.model_validate(r) for r in rows], next_cursor=next_cursor)


async def _staff_detail(conn: AsyncConnection[Any], staff_id: str) -> StaffDetail | None:
    row = await _one(conn, _STAFF, "p.staff_id", staff_id)
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
    responses=_responses("staff member", 404),
    summary="One staff member and the sites they handle",
)
async def get_staff(_principal: Operator, pool: Pool, staff_id: IdPath) -> StaffDetail:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn:
        detail = await _staff_detail(conn, staff_id)
    if detail is None:
        raise _not_found("staff member", staff_id)
    return detail


@router.put(
    "/staff/{staff_id}",
    responses={**_responses("staff member", 422), **_created(StaffDetail)},
    summary="Add a staff member, or rename one (away: PUT /staff/{staff_id}/away)",
)
async def put_staff(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    staff_id: IdPath,
    body: Annotated[StaffBody, Body(examples=[{"name": "Li Wei"}])],
) -> StaffDetail:
    async with pool.connection(timeout=_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM staff WHERE staff_id = %s FOR UPDATE", (staff_id,))
        created = await cur.fetchone() is None
        try:
            await staffing.upsert_staff(conn, staff_id, body.name)
        except InvalidRequest as exc:
            raise _refused(str(exc)) from None
        detail = await _staff_detail(conn, staff_id)
    assert detail is not None
    log.info("%s %s staff member %s", principal.actor, "created" if created else "updated", staff_id)
    _write_status(response, created)
    return detail
