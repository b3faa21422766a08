"""The dashboard's site map: the bureau's district boundaries, the tile setting, and each site's
position with its worst open alert.

Government networks are closed, so the base layer is the bureau's own district boundaries, a
GeoJSON file (`VIGIL_MAP_GEOJSON`), with raster tiles only where the bureau runs a tile server
(`VIGIL_MAP_TILE_URL`). The file is read and checked once, when the API is built: a file that
cannot be drawn stops the start-up with a ConfigurationError naming the file and the fault, rather
than leaving every operator with a blank map.

- `GET /api/v1/map/config`: the tile URL (or null) and how many districts there are.
- `GET /api/v1/map/districts`: the districts, a GeoJSON FeatureCollection (empty without a file).
- `GET /api/v1/map/sites`: every site that has a position, with its worst open alert's tier, and
  how many sites have none yet. An enterprise key gets its own sites only.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response, status
from psycopg import sql
from pydantic import BaseModel, Field

from api.auth import AUTH_ERRORS, Authenticated
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.registry.common import ACTIVE_ALERTS
from vigil.errors import ConfigurationError
from vigil.settings import Settings

# Hand-made, illustrative polygons for the demo's district (not real boundaries): what demo mode
# draws when VIGIL_MAP_GEOJSON is unset. Packaged with the dashboard's static files.
SAMPLE_GEOJSON = "static/geo/demo-district.geojson"
_GEOMETRIES = ("Polygon", "MultiPolygon")


class MapConfig(BaseModel):
    tile_url: str | None = Field(description="raster tiles under the districts ({z}/{x}/{y}); null: none")
    districts: int = Field(description="district boundaries in the base layer")


class MapSite(BaseModel):
    site_id: str
    enterprise_id: str
    name: str
    district: str | None
    latitude: float
    longitude: float
    worst_tier: int | None = Field(
        description="the most urgent open alert's tier (1 most urgent); null: none"
    )
    open_alerts: int = Field(description="alerts not yet closed or dismissed")


class MapSites(BaseModel):
    items: list[MapSite]
    unplaced: int = Field(description="sites the caller may see that have no position yet")


def _problem(path: Path, what: str) -> ConfigurationError:
    return ConfigurationError(f"VIGIL_MAP_GEOJSON {path}: {what}")


def _check_ring(ring: Any, where: str) -> str | None:
    """What is wrong with one linear ring of [longitude, latitude] positions, or None."""
    if not isinstance(ring, list) or len(ring) < 4:
        return f"{where}: a ring needs at least 4 positions (closed: the last repeats the first)"
    for position in ring:
        if (
            not isinstance(position, list)
            or len(position) not in (2, 3)
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in position)
        ):
            return f"{where}: a position must be [longitude, latitude], got {str(position)[:60]}"
        lon, lat = position[0], position[1]
        if not (math.isfinite(lon) and -180 <= lon <= 180 and math.isfinite(lat) and -90 <= lat <= 90):
            # The classic mistake: [latitude, longitude], or projected metres instead of degrees.
            return (
                f"{where}: position {position[:2]} is outside longitude -180..180 / latitude -90..90"
                " (GeoJSON is [longitude, latitude] in WGS-84 degrees)"
            )
    if ring[0][:2] != ring[-1][:2]:
        return f"{where}: the ring is not closed (its last position must repeat its first)"
    return None


def _check_feature(index: int, feature: Any) -> str | None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return f"feature {index} is not a GeoJSON Feature"
    properties = feature.get("properties")
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str) or not name.strip():
        return f"feature {index} has no `name` property (each district needs its name)"
    where = f"feature {index} ({name})"
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in _GEOMETRIES:
        return f"{where}: geometry must be Polygon or MultiPolygon, got {kind}"
    assert isinstance(geometry, dict)
    coordinates = geometry.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        return f"{where}: no coordinates"
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            return f"{where}: a polygon must be a list of rings"
        for ring in polygon:
            if (fault := _check_ring(ring, where)) is not None:
                return fault
    return None


def load_districts(path: Path) -> dict[str, Any]:
    """The district boundaries in `path`, checked: a GeoJSON FeatureCollection of Polygon and
    MultiPolygon features in WGS-84 degrees, each with a `name`. Raises ConfigurationError naming
    the file and the first fault found."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _problem(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _problem(path, f"is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise _problem(path, "must be a GeoJSON FeatureCollection of the districts")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise _problem(path, "has no features (one Polygon or MultiPolygon per district)")
    for index, feature in enumerate(features):
        if (fault := _check_feature(index, feature)) is not None:
            raise _problem(path, fault)
    return {"type": "FeatureCollection", "features": features}


def districts_file(settings: Settings) -> Path | None:
    """The district file in force: the setting, else the sample in demo mode, else none."""
    if settings.map_geojson:
        return Path(settings.map_geojson)
    if settings.demo:
        return Path(str(resources.files("api").joinpath(SAMPLE_GEOJSON)))
    return None


_SITES = sql.SQL(
    "SELECT s.site_id, s.enterprise_id, s.name, s.district, s.latitude, s.longitude,"
    " a.worst_tier, a.open_alerts"
    " FROM sites s CROSS JOIN LATERAL ("
    "  SELECT min(tier) AS worst_tier, count(*) AS open_alerts FROM alerts"
    "  WHERE {active} AND alerts.site_id = s.site_id) a"
    " WHERE s.latitude IS NOT NULL AND (%(tenant)s::text IS NULL OR s.enterprise_id = %(tenant)s)"
    " ORDER BY s.site_id"
).format(active=sql.SQL(ACTIVE_ALERTS))  # a constant of the registry, not input
_UNPLACED = (
    "SELECT count(*) FROM sites WHERE latitude IS NULL"
    " AND (%(tenant)s::text IS NULL OR enterprise_id = %(tenant)s)"
)


def make_router(settings: Settings) -> APIRouter:
    """The routes, with the district file read and checked now (a bad one stops the start-up)."""
    path = districts_file(settings)
    districts = load_districts(path) if path else {"type": "FeatureCollection", "features": []}
    # Serialised once: the file does not change while the API runs.
    body = orjson.dumps(districts)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    config = MapConfig(tile_url=settings.map_tile_url, districts=len(districts["features"]))
    router = APIRouter(prefix="/api/v1/map", tags=["map"])

    @router.get("/config", responses=AUTH_ERRORS, summary="The site map's tile setting and district count")
    async def map_config(_principal: Authenticated) -> MapConfig:
        return config

    @router.get(
        "/districts",
        response_class=Response,
        responses={
            **AUTH_ERRORS,
            200: {
                "description": "a GeoJSON FeatureCollection: one Polygon or MultiPolygon per district",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
        summary="The bureau's district boundaries (GeoJSON), the site map's base layer",
    )
    async def map_districts(_principal: Authenticated, request: Request) -> Response:
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.get(
        "/sites",
        responses=AUTH_ERRORS,
        summary="Sites with a position and their worst open alert (an enterprise: its own sites)",
    )
    async def map_sites(principal: Authenticated, pool: Pool) -> MapSites:
        # Tenancy here: an enterprise key sees its own sites, bureau staff every site.
        params = {"tenant": principal.enterprise_id if principal.role == "enterprise" else None}
        if principal.role == "enterprise" and principal.enterprise_id is None:
            return MapSites(items=[], unplaced=0)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute(_SITES, params)
            rows = await cur.fetchall()
            cur = await conn.execute(_UNPLACED, params)
            unplaced = (await cur.fetchone() or (0,))[0]
        fields = list(MapSite.model_fields)  # the query's columns, in this order
        items = [MapSite.model_validate(dict(zip(fields, r, strict=True))) for r in rows]
        return MapSites(items=items, unplaced=int(unplaced))

    return router
