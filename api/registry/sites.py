"""Sites and their A/B/C handlers, and the per-site status the dashboard shows.

A site moves to another enterprise only while no device, camera or active alert is on it (409).
`GET /sites/status` is a fixed path, so a site with the id `status` cannot be created here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from psycopg import AsyncConnection, sql
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from alerts import staffing
from api.auth import Operator, Supervisor
from api.deps import Pool
from api.registry.common import (
    ACQUIRE_TIMEOUT_S,
    ACTIVE_ALERTS,
    TEXT_REGEX,
    Cursor,
    IdField,
    IdPath,
    IdQuery,
    Limit,
    Name,
    Page,
    conflict,
    created_response,
    error_responses,
    fetch_one,
    fetch_page,
    list_page,
    log,
    not_found,
    refused,
    write_status,
)
from vigil.errors import InvalidRequest, NotFound

router = APIRouter()

District = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=TEXT_REGEX)
]
DistrictQuery = Annotated[str | None, Query(min_length=1, max_length=100, pattern=TEXT_REGEX)]
# WGS-84 degrees for the dashboard's site map; NaN and infinities are refused like any other
# out-of-range value (422), so no marker is ever drawn off the globe.
# Local time of day in the bureau's zone (Settings.timezone); closes before opens spans midnight.
TimeOfDay = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$"), Field(examples=["08:30"])]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="degrees, -90 to 90")]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, description="degrees, -180 to 180")]


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
    latitude: float | None = Field(description="null: not placed on the map yet")
    longitude: float | None
    opens_at: str | None = Field(default=None, description="HH:MM in the bureau's zone; null: no hours")
    closes_at: str | None = Field(default=None, description="HH:MM; before opens_at: open over midnight")
    created_at: datetime
    handlers: Handlers


class SiteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enterprise_id: IdField
    name: Name
    district: District | None = None
    # Both or neither: a PUT replaces the whole record, so leaving them out takes the site off the map.
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    # Both or neither, like the position: leaving them out of a PUT clears the hours.
    opens_at: TimeOfDay | None = None
    closes_at: TimeOfDay | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> SiteBody:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        if (self.opens_at is None) != (self.closes_at is None):
            raise ValueError("give both opens_at and closes_at, or neither")
        if self.opens_at is not None and self.opens_at == self.closes_at:
            raise ValueError("opens_at and closes_at are equal; leave both out for no hours")
        return self


class HandlersBody(BaseModel):
    """Each slot given is set (a staff id) or cleared (null); a slot left out is kept."""

    model_config = ConfigDict(extra="forbid")
    A: IdField | None = None
    B: IdField | None = None
    C: IdField | None = None


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


_SITES = sql.SQL(
    "SELECT s.site_id, s.enterprise_id, s.name, s.district, s.latitude, s.longitude,"
    " to_char(s.opens_at, 'HH24:MI') AS opens_at, to_char(s.closes_at, 'HH24:MI') AS closes_at, s.created_at,"
    " COALESCE((SELECT jsonb_object_agg(h.slot, jsonb_build_object("
    "'staff_id', st.staff_id, 'name', st.name, 'away', st.away))"
    " FROM site_handlers h JOIN staff st ON st.staff_id = h.staff_id WHERE h.site_id = s.site_id),"
    " '{}'::jsonb) AS handlers FROM sites s"
)


@router.get("/sites", responses=error_responses("site"), summary="Sites with their handlers, in id order")
async def list_sites(
    _principal: Operator,
    pool: Pool,
    enterprise_id: IdQuery = None,
    district: DistrictQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[Site]:
    rows, next_cursor = await list_page(
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
    responses=error_responses("site"),
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
        pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        # One snapshot: a camera and the alert that says it is offline are read together.
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows, next_cursor = await fetch_page(conn, _SITES, "s.site_id", filters, cursor, limit)
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
            f"SELECT source_kind, source_id FROM alerts WHERE {ACTIVE_ALERTS} AND ("  # noqa: S608  # constant
            "(source_kind = 'camera' AND code = 'CAMERA_OFFLINE' AND source_id = ANY(%s))"
            " OR (source_kind = 'device' AND code = 'DEVICE_OFFLINE' AND source_id = ANY(%s)))",
            ([c[0] for c in cameras], [d[0] for d in devices]),
        )
        offline = {(kind, source) for kind, source in await cur.fetchall()}
        await cur.execute(
            f"SELECT site_id, tier, count(*) FROM alerts WHERE {ACTIVE_ALERTS} AND site_id = ANY(%s)"  # noqa: S608
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


@router.get("/sites/{site_id}", responses=error_responses("site", 404), summary="One site with its handlers")
async def get_site(_principal: Operator, pool: Pool, site_id: IdPath) -> Site:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await fetch_one(conn, _SITES, "s.site_id", site_id)
    if row is None:
        raise not_found("site", site_id)
    return Site.model_validate(row)


@router.put(
    "/sites/{site_id}",
    responses={**error_responses("site", 409, 422), **created_response(Site)},
    summary="Create or update a site (its enterprise must exist)",
)
async def put_site(
    principal: Supervisor,
    pool: Pool,
    response: Response,
    site_id: IdPath,
    body: Annotated[
        SiteBody,
        Body(
            examples=[
                {
                    "enterprise_id": "noodle-house",
                    "name": "Central kitchen",
                    "district": "Xuhui",
                    "latitude": 31.205,
                    "longitude": 121.428,
                }
            ]
        ),
    ],
) -> Site:
    if site_id == "status":
        raise refused("'status' is reserved (GET /api/v1/sites/status); choose another site id")
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        # Held until commit: the enterprise cannot be deleted under the new site.
        cur = await conn.execute(
            "SELECT 1 FROM enterprises WHERE enterprise_id = %s FOR KEY SHARE", (body.enterprise_id,)
        )
        if await cur.fetchone() is None:
            raise refused(f"enterprise {body.enterprise_id} not found")
        cur = await conn.execute("SELECT enterprise_id FROM sites WHERE site_id = %s FOR UPDATE", (site_id,))
        existing = await cur.fetchone()
        if existing is not None and existing[0] != body.enterprise_id:
            await _check_site_movable(conn, site_id, existing[0])
        await conn.execute(
            "INSERT INTO sites"
            " (site_id, enterprise_id, name, district, latitude, longitude, opens_at, closes_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::time, %s::time)"
            " ON CONFLICT (site_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " name = EXCLUDED.name, district = EXCLUDED.district,"
            " latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
            " opens_at = EXCLUDED.opens_at, closes_at = EXCLUDED.closes_at",
            (
                site_id,
                body.enterprise_id,
                body.name,
                body.district,
                body.latitude,
                body.longitude,
                body.opens_at,
                body.closes_at,
            ),
        )
        row = await fetch_one(conn, _SITES, "s.site_id", site_id)
    assert row is not None
    log.info("%s %s site %s", principal.actor, "updated" if existing else "created", site_id)
    write_status(response, existing is None)
    return Site.model_validate(row)


async def _check_site_movable(conn: AsyncConnection[Any], site_id: str, owner: str) -> None:
    for what, query in (
        ("devices", "SELECT count(*) FROM devices WHERE site_id = %s"),
        ("cameras", "SELECT count(*) FROM cameras WHERE site_id = %s"),
        ("active alerts", f"SELECT count(*) FROM alerts WHERE {ACTIVE_ALERTS} AND site_id = %s"),  # noqa: S608
    ):
        cur = await conn.execute(query, (site_id,))
        count = (await cur.fetchone() or (0,))[0]
        if count:
            raise conflict(
                f"site {site_id} has {count} {what} of enterprise {owner}; move or close them"
                " before moving the site to another enterprise"
            )


@router.put(
    "/sites/{site_id}/handlers",
    responses=error_responses("site", 404, 422),
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
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM sites WHERE site_id = %s FOR UPDATE", (site_id,))
        if await cur.fetchone() is None:
            raise not_found("site", site_id)
        try:
            await staffing.set_handlers(conn, site_id, slots)
        except (NotFound, InvalidRequest) as exc:  # the site exists: what is missing is a staff member
            raise refused(str(exc)) from None
        row = await fetch_one(conn, _SITES, "s.site_id", site_id)
    assert row is not None
    log.info("%s set handlers of site %s: %s", principal.actor, site_id, slots)
    return Site.model_validate(row)
