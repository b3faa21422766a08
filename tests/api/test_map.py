"""The site map's data over HTTP, against the real tables: coordinates on sites (validated ranges,
both or neither; also from `vigil sites locate`), the district layer and tile setting, and the
map's sites with their worst open alert, where an enterprise key sees only its own sites."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.map import SAMPLE_GEOJSON
from tests.api.conftest import TOKEN, Seeder, bearer, make_key
from vigil.settings import Settings

TILES = "/tiles/{z}/{x}/{y}.png"
INSIDE = {"latitude": 31.205, "longitude": 121.428}  # inside the sample district


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    from importlib import resources

    sample = str(resources.files("api").joinpath(SAMPLE_GEOJSON))
    return settings.model_copy(
        update={"api_token": SecretStr(TOKEN), "map_geojson": sample, "map_tile_url": TILES}
    )


@pytest.fixture
def sup(supervisor_key: str) -> dict[str, str]:
    return bearer(supervisor_key)


async def _site(
    client: httpx.AsyncClient, sup: dict[str, str], enterprise: str, site: str, **where: Any
) -> None:
    r = await client.put(
        f"/api/v1/enterprises/{enterprise}", json={"name": f"餐馆 {enterprise}"}, headers=sup
    )
    assert r.status_code in (200, 201), r.text
    r = await client.put(
        f"/api/v1/sites/{site}",
        json={"enterprise_id": enterprise, "name": f"后厨 {site}", **where},
        headers=sup,
    )
    assert r.status_code in (200, 201), r.text


async def test_coordinates_round_trip_and_are_cleared_by_a_put_without_them(
    client: httpx.AsyncClient, uid: str, sup: dict[str, str]
) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    await _site(client, sup, ent, site, **INSIDE)
    got = (await client.get(f"/api/v1/sites/{site}")).json()
    assert (got["latitude"], got["longitude"]) == (31.205, 121.428)
    edges = {"latitude": -90, "longitude": 180}
    r = await client.put(
        f"/api/v1/sites/{site}", json={"enterprise_id": ent, "name": "x", **edges}, headers=sup
    )
    assert r.status_code == 200 and (r.json()["latitude"], r.json()["longitude"]) == (-90, 180)
    r = await client.put(f"/api/v1/sites/{site}", json={"enterprise_id": ent, "name": "x"}, headers=sup)
    assert r.status_code == 200 and r.json()["latitude"] is None and r.json()["longitude"] is None


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"latitude": 90.0001, "longitude": 121.4}, "latitude"),
        ({"latitude": -91, "longitude": 121.4}, "latitude"),
        ({"latitude": 31.2, "longitude": 180.5}, "longitude"),
        ({"latitude": 31.2, "longitude": -181}, "longitude"),
        ({"latitude": "north", "longitude": 121.4}, "latitude"),
        ({"latitude": 31.2}, None),  # both or neither
        ({"longitude": 121.4}, None),
        ({"latitude": None, "longitude": 121.4}, None),
    ],
)
async def test_bad_coordinates_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, uid: str, sup: dict[str, str], where: dict[str, Any], field: str | None
) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    await _site(client, sup, ent, site, **INSIDE)
    r = await client.put(
        f"/api/v1/sites/{site}", json={"enterprise_id": ent, "name": "x", **where}, headers=sup
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    if field is None:
        assert "both latitude and longitude" in str(detail)
    else:
        assert any(field in e["loc"] for e in detail), detail
    got = (await client.get(f"/api/v1/sites/{site}")).json()
    assert (got["latitude"], got["longitude"], got["name"]) == (31.205, 121.428, f"后厨 {site}")


async def test_not_a_number_is_refused(client: httpx.AsyncClient, uid: str, sup: dict[str, str]) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    await _site(client, sup, ent, site)
    for raw in ('{"latitude": NaN, "longitude": 1}', '{"latitude": 1, "longitude": Infinity}'):
        body = raw[:-1] + f', "enterprise_id": "{ent}", "name": "x"}}'
        r = await client.put(
            f"/api/v1/sites/{site}", content=body, headers={**sup, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text


async def test_the_district_layer_and_the_tile_setting(client: httpx.AsyncClient) -> None:
    config = (await client.get("/api/v1/map/config")).json()
    assert config == {"tile_url": TILES, "districts": 3}
    r = await client.get("/api/v1/map/districts")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    layer = r.json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 3
    assert all(f["properties"]["name"] for f in layer["features"])
    again = await client.get("/api/v1/map/districts", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    for path in ("config", "districts", "sites"):
        anonymous = await client.get(f"/api/v1/map/{path}", headers={"Authorization": ""})
        assert anonymous.status_code == 401


async def test_each_site_takes_its_worst_open_alert(
    client: httpx.AsyncClient, pool: Any, uid: str, sup: dict[str, str]
) -> None:
    ent = f"ent-{uid}"
    seed = Seeder(pool, uid)
    await _site(client, sup, ent, f"red-{uid}", latitude=31.20, longitude=121.42)
    await _site(client, sup, ent, f"amber-{uid}", latitude=31.21, longitude=121.43)
    await _site(client, sup, ent, f"green-{uid}", latitude=31.22, longitude=121.41)
    await _site(client, sup, ent, f"nowhere-{uid}")
    now = datetime.now(UTC)
    await seed.alert(1, created_at=now, tier=2, enterprise=ent, site=f"red-{uid}")
    await seed.alert(2, created_at=now, tier=1, enterprise=ent, site=f"red-{uid}")
    await seed.alert(3, created_at=now, tier=3, enterprise=ent, site=f"amber-{uid}")
    await seed.alert(4, created_at=now, tier=2, enterprise=ent, site=f"amber-{uid}")
    await seed.alert(5, created_at=now, tier=1, enterprise=ent, site=f"amber-{uid}", status="closed")
    await seed.alert(6, created_at=now, tier=1, enterprise=ent, site=f"green-{uid}", status="dismissed")

    body = (await client.get("/api/v1/map/sites")).json()
    mine = {s["site_id"]: s for s in body["items"] if s["enterprise_id"] == ent}
    assert {k: (v["worst_tier"], v["open_alerts"]) for k, v in mine.items()} == {
        f"red-{uid}": (1, 2),
        f"amber-{uid}": (2, 2),
        f"green-{uid}": (None, 0),
    }
    assert mine[f"amber-{uid}"]["latitude"] == 31.21 and mine[f"amber-{uid}"]["name"] == f"后厨 amber-{uid}"
    assert body["unplaced"] >= 1  # nowhere-…, and whatever other tests left unplaced


async def test_an_enterprise_sees_only_its_own_sites(
    client: httpx.AsyncClient, pool: Any, uid: str, sup: dict[str, str]
) -> None:
    mine, theirs = f"mine-{uid}", f"theirs-{uid}"
    await _site(client, sup, mine, f"site-m-{uid}", **INSIDE)
    await _site(client, sup, mine, f"site-m2-{uid}")
    await _site(client, sup, theirs, f"site-t-{uid}", **INSIDE)
    key = bearer(await make_key(pool, "enterprise", mine))
    body = (await client.get("/api/v1/map/sites", headers=key)).json()
    assert [s["site_id"] for s in body["items"]] == [f"site-m-{uid}"]
    assert body["unplaced"] == 1
    assert theirs not in str(body)
    # The bureau's own layer is no enterprise's data: an enterprise reads it like staff.
    assert (await client.get("/api/v1/map/districts", headers=key)).status_code == 200
    staff = (await client.get("/api/v1/map/sites")).json()
    assert {f"site-m-{uid}", f"site-t-{uid}"} <= {s["site_id"] for s in staff["items"]}


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    assert settings.database_url
    env = os.environ | {"VIGIL_DATABASE_URL": settings.database_url, "VIGIL_MODE": "production"}
    return subprocess.run(
        [sys.executable, "-m", "shell.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_command_line_places_a_site_and_refuses_bad_coordinates(
    settings: Settings, client: httpx.AsyncClient, uid: str, sup: dict[str, str]
) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    await _site(client, sup, ent, site)
    done = _cli(settings, "sites", "locate", site, "--lat", "31.205", "--lon", "121.428")
    assert done.returncode == 0 and "at 31.205, 121.428" in done.stdout, done.stdout + done.stderr
    got = (await client.get(f"/api/v1/sites/{site}")).json()
    assert (got["latitude"], got["longitude"]) == (31.205, 121.428)
    for args, says in [
        (("--lat", "91", "--lon", "121"), "latitude must be a number from -90 to 90"),
        (("--lat", "31", "--lon", "nan"), "longitude must be a number from -180 to 180"),
        (("--lat", "31"), "give both latitude and longitude"),
        ((), "give --lat and --lon, or --clear"),
    ]:
        refused = _cli(settings, "sites", "locate", site, *args)
        assert refused.returncode != 0 and says in refused.stderr, refused.stderr
    unknown = _cli(settings, "sites", "locate", f"nowhere-{uid}", "--lat", "1", "--lon", "1")
    assert unknown.returncode != 0 and f"site nowhere-{uid} is not registered" in unknown.stderr
    done = _cli(settings, "sites", "locate", site, "--clear")
    assert done.returncode == 0 and "off the map" in done.stdout
    assert (await client.get(f"/api/v1/sites/{site}")).json()["latitude"] is None
