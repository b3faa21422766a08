"""The device registry as services see it: an in-memory cache of the `devices` table.

Lookups are on the hot path (every MQTT message), so they never touch the database. The cache is
reloaded as soon as the table changes (the table's trigger NOTIFYs channel `vigil_registry`,
migration 0008, and `refresh_forever` LISTENs), every `refresh_s` regardless, and, for an unknown
id, at most once per `miss_refresh_s` — a flood of messages from unregistered devices cannot turn
into a flood of queries.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from vigil.errors import InvalidRequest, NotFound

log = logging.getLogger(__name__)

T = TypeVar("T")

# The channel the registry tables' triggers notify (migration 0008); the payload is the table.
CHANGES_CHANNEL = "vigil_registry"


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    enterprise_id: str
    site_id: str
    profile: str
    attributes: dict[str, Any]


class CachedTable(Generic[T]):
    """An in-memory copy of one registry table, keyed by id. Subclasses say how to read the rows
    and name their table (the payload of its change notifications)."""

    table: str = ""

    def __init__(
        self, pool: AsyncConnectionPool, *, refresh_s: float = 30.0, miss_refresh_s: float = 1.0
    ) -> None:
        self._pool = pool
        # Full reload period: registry edits reach every service within this time at the latest.
        self._refresh_s = refresh_s
        # An unknown id triggers a reload at most this often, so a newly registered device or
        # camera is recognised within about a second without letting unknown ids hammer the
        # database.
        self._miss_refresh_s = miss_refresh_s
        self._rows: dict[str, T] = {}
        self._loaded_at = 0.0  # last attempt, successful or not: a failing database is not hammered
        self._lock = asyncio.Lock()

    async def _fetch(self, conn: AsyncConnection[Any]) -> dict[str, T]:
        raise NotImplementedError

    async def load(self) -> None:
        async with self._lock:
            self._loaded_at = time.monotonic()
            async with self._pool.connection() as conn:
                self._rows = await self._fetch(conn)
        log.debug("%s loaded: %d rows", type(self).__name__, len(self._rows))

    async def refresh_forever(self, interval_s: float) -> None:
        """Reload when the table changes and at least every `interval_s` (run as a background
        task). A failed reload keeps the cache; a lost listening connection falls back to polling
        until it can listen again."""
        while True:
            try:
                await self._listen(interval_s)
            except Exception as exc:
                log.warning("%s: change notifications lost (%s); polling", type(self).__name__, exc)
            await asyncio.sleep(interval_s)
            try:
                await self.load()
            except Exception as exc:
                log.warning("%s refresh failed (%s); keeping the cached copy", type(self).__name__, exc)

    async def _listen(self, interval_s: float) -> None:
        # Its own connection, not a pool's: it is held for the life of the service.
        conninfo = self._pool.conninfo
        if not isinstance(conninfo, str):
            raise TypeError("the registry's pool must be made from a connection string")
        async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGES_CHANNEL)))
            await self.load()  # whatever changed before the LISTEN began
            while True:
                async for note in conn.notifies(timeout=interval_s):
                    if note.payload == self.table:
                        break  # this table changed
                await self.load()  # on a change at once, else the periodic reload

    @property
    def loaded_at(self) -> float:
        """time.monotonic() of the last load attempt (0 before the first)."""
        return self._loaded_at

    def get(self, key: str) -> T | None:
        """Cached lookup only; never waits."""
        return self._rows.get(key)

    def all(self) -> list[T]:
        return list(self._rows.values())

    def fresh(self, key: str) -> T | None:
        """The cached row when the cache is current, without touching the event loop: the hot path
        of every message. None means "ask `lookup`" (a miss, or a cache due for a reload)."""
        if time.monotonic() - self._loaded_at > self._refresh_s:
            return None
        return self._rows.get(key)

    async def lookup(self, key: str) -> T | None:
        """Cached lookup that reloads on a miss (rate-limited) or when the cache is stale; raises
        the database's error if that reload fails."""
        row = self._rows.get(key)
        age = time.monotonic() - self._loaded_at
        if (row is None and age > self._miss_refresh_s) or age > self._refresh_s:
            await self.load()
            row = self._rows.get(key)
        return row

    def __len__(self) -> int:
        return len(self._rows)


class DeviceRegistry(CachedTable[Device]):
    table = "devices"

    async def _fetch(self, conn: AsyncConnection[Any]) -> dict[str, Device]:
        cur = await conn.execute("SELECT device_id, enterprise_id, site_id, profile, attributes FROM devices")
        return {r[0]: Device(r[0], r[1], r[2], r[3], r[4] or {}) for r in await cur.fetchall()}


async def register_device(
    pool: AsyncConnectionPool,
    *,
    enterprise_id: str,
    site_id: str,
    device_id: str,
    profile: str,
    attributes: dict[str, Any] | None = None,
    enterprise_name: str | None = None,
    site_name: str | None = None,
) -> None:
    """Create or update a device (and its enterprise and site if they are new)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (enterprise_id, enterprise_name or enterprise_id),
        )
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (site_id, enterprise_id, site_name or site_id),
        )
        await conn.execute(
            "INSERT INTO devices (device_id, enterprise_id, site_id, profile, attributes)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " site_id = EXCLUDED.site_id, profile = EXCLUDED.profile,"
            " attributes = EXCLUDED.attributes, updated_at = now()",
            (device_id, enterprise_id, site_id, profile, Jsonb(attributes or {})),
        )


# --- where a site is (the dashboard's site map) ---------------------------------------------
def check_location(latitude: float | None, longitude: float | None) -> None:
    """Raise InvalidRequest unless both are None (no position) or both are finite WGS-84 degrees in
    range: a half-given position, or one outside the globe, would draw a marker in the wrong place."""
    if (latitude is None) != (longitude is None):
        raise InvalidRequest("give both latitude and longitude, or neither")
    if latitude is None or longitude is None:
        return
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        raise InvalidRequest(f"latitude must be a number from -90 to 90, got {latitude!r}")
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        raise InvalidRequest(f"longitude must be a number from -180 to 180, got {longitude!r}")


async def set_site_location(
    conn: AsyncConnection[Any], site_id: str, latitude: float | None, longitude: float | None
) -> None:
    """Place a registered site on the map (None and None: take it off). NotFound for an unknown site."""
    check_location(latitude, longitude)
    cur = await conn.execute(
        "UPDATE sites SET latitude = %s, longitude = %s WHERE site_id = %s", (latitude, longitude, site_id)
    )
    if cur.rowcount == 0:
        raise NotFound(f"site {site_id} is not registered")


# --- device profiles as registration sees them ------------------------------------------------
# The profiles themselves belong to the telemetry detector (detectors/profiles/*.toml). What a
# registration must respect — the profile names and the type of each attribute a profile reads —
# is this small catalogue: {profile: {attribute: kind}}, built from the profiles by whoever may
# import them (the shell, the detector) and published to the `device_profiles` table (migration
# 0011) for the API, which may not import a service.
NUMBER, TIMEZONE, TIME_OF_DAY = "number", "timezone", "time_of_day"
ProfileCatalogue = dict[str, dict[str, str]]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def unknown_profile_detail(device_id: str, profile: str, known: Iterable[str]) -> str:
    return (
        f"device {device_id!r} has profile {profile!r}, which is not a known profile;"
        f" known profiles: {', '.join(sorted(known))}"
    )


def check_device_profile(profile: str, attributes: Mapping[str, Any], catalogue: ProfileCatalogue) -> None:
    """Raise InvalidRequest, saying what is wrong and what is expected, when `profile` is not in
    the catalogue or an attribute it reads has the wrong type. Attributes no profile reads (a
    location, a model name) may be any scalar."""
    if profile not in catalogue:
        raise InvalidRequest(f"unknown profile {profile!r}; known profiles: {', '.join(sorted(catalogue))}")
    problems = []
    for name, kind in sorted(catalogue[profile].items()):
        if name not in attributes or attributes[name] is None:
            continue
        value = attributes[name]
        if kind == NUMBER and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        ):
            problems.append(f"{name} must be a number (profile {profile} compares it), got {value!r}")
        elif kind == TIMEZONE and not (isinstance(value, str) and _zone(value)):
            problems.append(f"{name} must be an IANA time zone such as Asia/Shanghai, got {value!r}")
        elif kind == TIME_OF_DAY and not (isinstance(value, str) and _HHMM.match(value)):
            problems.append(f"{name} must be a time of day HH:MM such as 22:00, got {value!r}")
    if problems:
        raise InvalidRequest("attributes do not fit profile " + profile + ": " + "; ".join(problems))


def _zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def publish_profiles(conn: AsyncConnection[Any], catalogue: ProfileCatalogue) -> None:
    """Make `catalogue` the published one (profiles no longer shipped are removed)."""
    await conn.execute("DELETE FROM device_profiles WHERE NOT (profile = ANY(%s))", (list(catalogue),))
    for profile, kinds in catalogue.items():
        await conn.execute(
            "INSERT INTO device_profiles (profile, attribute_kinds) VALUES (%s, %s)"
            " ON CONFLICT (profile) DO UPDATE SET attribute_kinds = EXCLUDED.attribute_kinds,"
            " published_at = now()",
            (profile, Jsonb(kinds)),
        )


async def published_profiles(conn: AsyncConnection[Any]) -> ProfileCatalogue:
    cur = await conn.execute("SELECT profile, attribute_kinds FROM device_profiles")
    return {str(name): dict(kinds) for name, kinds in await cur.fetchall()}


# --- when a site is open (after-hours findings, issue 23.3) -------------------------------------
@dataclass(frozen=True, slots=True)
class SiteHours:
    """A site's opening hours as local "HH:MM" in the bureau's zone (Settings.timezone); both None
    when none are registered. `closes` before `opens` spans midnight."""

    site_id: str
    opens: str | None
    closes: str | None


def check_hours(opens: str | None, closes: str | None) -> None:
    """Raise InvalidRequest unless both are None or both are distinct HH:MM times of day."""
    if (opens is None) != (closes is None):
        raise InvalidRequest("give both the opening and the closing time, or neither")
    if opens is None or closes is None:
        return
    for label, value in (("opening", opens), ("closing", closes)):
        if not _HHMM.match(value):
            raise InvalidRequest(f"the {label} time must be HH:MM such as 08:30, got {value!r}")
    if opens == closes:
        # Either "never open" or "open all day": say which by leaving the hours out.
        raise InvalidRequest("the opening and closing times are equal; leave them out for no hours")


class SiteHoursRegistry(CachedTable[SiteHours]):
    """The opening hours of every site (also those without any, so that a lookup of such a site
    is a hit, not a reload)."""

    table = "sites"

    async def _fetch(self, conn: AsyncConnection[Any]) -> dict[str, SiteHours]:
        cur = await conn.execute(
            "SELECT site_id, to_char(opens_at, 'HH24:MI'), to_char(closes_at, 'HH24:MI') FROM sites"
        )
        return {r[0]: SiteHours(r[0], r[1], r[2]) for r in await cur.fetchall()}


async def set_site_hours(
    conn: AsyncConnection[Any], site_id: str, opens: str | None, closes: str | None
) -> None:
    """Set a registered site's opening hours (None and None: none). NotFound for an unknown site."""
    check_hours(opens, closes)
    cur = await conn.execute(
        "UPDATE sites SET opens_at = %s::time, closes_at = %s::time WHERE site_id = %s",
        (opens, closes, site_id),
    )
    if cur.rowcount == 0:
        raise NotFound(f"site {site_id} is not registered")
