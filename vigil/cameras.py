"""Cameras as services see them: where frames come from, how often to sample, and the zones in
which each violation code counts. Validated here, at the boundary where a camera is registered
(CLI, API) and again where it is loaded, since the table may have been edited by hand."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from vigil.catalogue import catalogue
from vigil.errors import ConfigurationError
from vigil.events import ID_PATTERN
from vigil.registry import CachedTable

log = logging.getLogger(__name__)

PUSH_SOURCE = "push"
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
MAX_ZONES = 16
MAX_ZONE_POINTS = 64
ZONE_KEYS = ("name", "points", "codes", "exclude")


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in normalised image coordinates (0..1, origin top left) and the codes it is about;
    no codes means every code. An ordinary zone is where its codes count (a bare face matters over
    the preparation counter); an *exclusion* zone is where they do not (a flame on the stove is
    cooking, the same flame anywhere else is a fire)."""

    name: str
    points: tuple[tuple[float, float], ...]
    codes: frozenset[str]
    exclude: bool = False

    def applies_to(self, code: str) -> bool:
        return not self.codes or code in self.codes


@dataclass(frozen=True, slots=True)
class Camera:
    camera_id: str
    enterprise_id: str
    site_id: str
    source: str
    sample_fps: float
    zones: tuple[Zone, ...]
    enabled: bool = True

    @property
    def pushed(self) -> bool:
        return self.source == PUSH_SOURCE

    @property
    def is_file(self) -> bool:
        return not self.pushed and urlsplit(self.source).scheme not in STREAM_SCHEMES


def check_source(source: str) -> str:
    """A camera source must be a stream URL, a video file, or 'push'; anything else is refused."""
    if source == PUSH_SOURCE:
        return source
    try:
        # urlsplit and .hostname raise ValueError on a malformed authority ("rtsp://[", a bad
        # port): that is a refused registration, not a crash of the CLI or a 500 from the API.
        parts = urlsplit(source)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"camera source {source!r} is not a valid URL: {exc}") from None
    if parts.scheme in STREAM_SCHEMES:
        if not host:
            raise ConfigurationError(f"camera source {source!r} has no host")
        return source
    if parts.scheme == "file":
        source = parts.path
    elif parts.scheme:
        raise ConfigurationError(
            f"camera source scheme {parts.scheme!r} not supported: use rtsp://, http(s)://, a file or 'push'"
        )
    if not Path(source).is_absolute():
        raise ConfigurationError(f"camera video file {source!r} must be an absolute path")
    return source


def parse_zones(raw: object) -> tuple[Zone, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_ZONES:
        raise ConfigurationError(f"zones must be a list of at most {MAX_ZONES} polygons")
    known = catalogue()
    zones = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigurationError(f"zone {i} must be an object with name, points, codes and exclude")
        name = item.get("name", f"zone-{i}")
        # A misspelt key is refused, not ignored: "excluded": true read as an ordinary zone would
        # turn the stove into the only place a flame counts.
        if unknown := sorted(str(k) for k in item if k not in ZONE_KEYS):
            keys = ", ".join(ZONE_KEYS)
            raise ConfigurationError(f"zone {name!r}: unknown keys {unknown}; a zone has {keys}")
        points = item.get("points")
        if not isinstance(points, list) or not 3 <= len(points) <= MAX_ZONE_POINTS:
            raise ConfigurationError(f"zone {name!r}: points must be a list of 3 to {MAX_ZONE_POINTS} [x, y]")
        parsed = []
        for p in points:
            ok = isinstance(p, list | tuple) and len(p) == 2
            ok = ok and all(isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 1 for c in p)
            if not ok:
                raise ConfigurationError(f"zone {name!r}: each point must be [x, y] with 0 <= x, y <= 1")
            parsed.append((float(p[0]), float(p[1])))
        codes = item.get("codes", [])
        # isinstance first: a list or object among the codes is unhashable, and a TypeError here
        # would be a 500 from the API or, for a hand-edited row, stop the whole camera registry.
        if not isinstance(codes, list) or any(not isinstance(c, str) or c not in known for c in codes):
            raise ConfigurationError(f"zone {name!r}: codes must be violation codes from the catalogue")
        exclude = item.get("exclude", False)
        if not isinstance(exclude, bool):
            raise ConfigurationError(f"zone {name!r}: exclude must be true or false")
        zones.append(Zone(str(name), tuple(parsed), frozenset(codes), exclude))
    return tuple(zones)


def zones_json(zones: tuple[Zone, ...]) -> list[dict[str, Any]]:
    return [
        {"name": z.name, "points": [list(p) for p in z.points], "codes": sorted(z.codes)}
        | ({"exclude": True} if z.exclude else {})
        for z in zones
    ]


def _camera(row: tuple[Any, ...]) -> Camera:
    camera_id, enterprise_id, site_id, source, fps, zones, enabled = row
    return Camera(camera_id, enterprise_id, site_id, source, float(fps), parse_zones(zones), bool(enabled))


class CameraRegistry(CachedTable[Camera]):
    """The `cameras` table, cached like the device registry: lookups are on every frame's path."""

    table = "cameras"

    async def _fetch(self, conn: AsyncConnection[Any]) -> dict[str, Camera]:
        cur = await conn.execute(
            "SELECT camera_id, enterprise_id, site_id, source, sample_fps, zones, enabled FROM cameras"
        )
        cameras = {}
        for row in await cur.fetchall():
            try:
                cameras[row[0]] = _camera(row)
            except ConfigurationError as exc:  # a hand-edited row must not stop every camera
                log.error("camera %s skipped: %s", row[0], exc)
        return cameras


def validate_camera(
    *,
    enterprise_id: str,
    site_id: str,
    camera_id: str,
    source: str,
    sample_fps: float = 2.0,
    zones: list[object] | tuple[object, ...] = (),
    enabled: bool = True,
) -> Camera:
    """Check every field of a registration without storing it; ConfigurationError names the first
    fault. The camera returned holds the source as stored (a file:// URL becomes its path)."""
    for label, value in (("enterprise", enterprise_id), ("site", site_id), ("camera", camera_id)):
        if not ID_PATTERN.fullmatch(value):
            raise ConfigurationError(f"{label} id {value!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if not 0 < sample_fps <= 30:
        raise ConfigurationError("sample_fps must be in (0, 30]")
    return Camera(
        camera_id, enterprise_id, site_id, check_source(source), sample_fps, parse_zones(list(zones)), enabled
    )


async def register_camera(
    pool: AsyncConnectionPool,
    *,
    enterprise_id: str,
    site_id: str,
    camera_id: str,
    source: str,
    sample_fps: float = 2.0,
    zones: list[object] | tuple[object, ...] = (),
    enabled: bool = True,
) -> Camera:
    """Create or update a camera (and its enterprise and site if they are new); every field is
    checked first, so a bad registration is refused with a reason instead of stored."""
    camera = validate_camera(
        enterprise_id=enterprise_id, site_id=site_id, camera_id=camera_id, source=source,
        sample_fps=sample_fps, zones=zones, enabled=enabled,
    )  # fmt: skip
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (enterprise_id, enterprise_id),
        )
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (site_id, enterprise_id, site_id),
        )
        cur = await conn.execute("SELECT enterprise_id FROM sites WHERE site_id = %s", (site_id,))
        row = await cur.fetchone()
        if row is None or row[0] != enterprise_id:
            raise ConfigurationError(f"site {site_id!r} belongs to another enterprise")
        await conn.execute(
            "INSERT INTO cameras (camera_id, enterprise_id, site_id, source, sample_fps, zones, enabled)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (camera_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " site_id = EXCLUDED.site_id, source = EXCLUDED.source, sample_fps = EXCLUDED.sample_fps,"
            " zones = EXCLUDED.zones, enabled = EXCLUDED.enabled, updated_at = now()",
            (
                camera_id,
                enterprise_id,
                site_id,
                camera.source,
                sample_fps,
                Jsonb(zones_json(camera.zones)),
                enabled,
            ),
        )
    return camera
