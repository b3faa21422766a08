"""The site map's district file (VIGIL_MAP_GEOJSON) is checked when the API is built: a file that
cannot be drawn stops the start-up with a ConfigurationError that names the file and the fault,
instead of serving a blank map. The shipped sample passes; the tile URL setting is checked too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.map import SAMPLE_GEOJSON, districts_file, load_districts, make_router
from vigil.errors import ConfigurationError
from vigil.settings import Settings

SQUARE = [[121.40, 31.19], [121.42, 31.19], [121.42, 31.21], [121.40, 31.21], [121.40, 31.19]]


def _feature(name: object = "示例区", geometry: Any = None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"name": name} if name is not None else {},
        "geometry": geometry if geometry is not None else {"type": "Polygon", "coordinates": [SQUARE]},
    }


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "districts.geojson"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_the_shipped_sample_is_valid_and_named_per_district() -> None:
    path = districts_file(Settings(mode="demo"))
    assert path is not None and path.as_posix().endswith(SAMPLE_GEOJSON)
    districts = load_districts(path)
    names = [f["properties"]["name"] for f in districts["features"]]
    assert len(names) == 3 and all(names)
    assert {f["geometry"]["type"] for f in districts["features"]} == {"Polygon", "MultiPolygon"}


def test_outside_demo_mode_there_is_no_base_layer_until_one_is_set(tmp_path: Path) -> None:
    assert districts_file(Settings(mode="production")) is None
    path = _write(tmp_path, {"type": "FeatureCollection", "features": [_feature()]})
    assert districts_file(Settings(mode="production", map_geojson=str(path))) == path


@pytest.mark.parametrize(
    ("document", "fault"),
    [
        ("{not json", "is not valid JSON"),
        ({"type": "Feature"}, "must be a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "has no features"),
        (
            {"type": "FeatureCollection", "features": [_feature(name=None)]},
            "feature 0 has no `name` property",
        ),
        (
            {"type": "FeatureCollection", "features": [_feature(name="  ")]},
            "feature 0 has no `name` property",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature(geometry={"type": "Point", "coordinates": [121.4, 31.2]})],
            },
            "feature 0 (示例区): geometry must be Polygon or MultiPolygon, got Point",
        ),
        (
            # [latitude, longitude] swapped is in range; projected metres are not.
            {
                "type": "FeatureCollection",
                "features": [
                    _feature(),
                    _feature("东片", {"type": "Polygon", "coordinates": [[[13500000.0, 3650000.0]] * 4]}),
                ],
            },
            "feature 1 (东片): position [13500000.0, 3650000.0] is outside longitude -180..180",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature(geometry={"type": "Polygon", "coordinates": [SQUARE[:-1]]})],
            },
            "the ring is not closed",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature(geometry={"type": "Polygon", "coordinates": [SQUARE[:3]]})],
            },
            "a ring needs at least 4 positions",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    _feature(
                        geometry={
                            "type": "MultiPolygon",
                            "coordinates": [[SQUARE], [[[1, "x"], [1, 2], [2, 2], [1, "x"]]]],
                        }
                    )
                ],
            },
            "a position must be [longitude, latitude]",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_fault(
    tmp_path: Path, document: Any, fault: str
) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(ConfigurationError) as refused:
        load_districts(path)
    message = str(refused.value)
    assert message.startswith(f"VIGIL_MAP_GEOJSON {path}: "), message
    assert fault in message, message


def test_a_missing_file_is_refused_and_the_api_does_not_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.geojson"
    with pytest.raises(ConfigurationError, match=r"nowhere\.geojson: cannot be read"):
        load_districts(missing)
    # The router is built by create_app: the same error stops the API before it serves.
    bad = _write(tmp_path, {"type": "FeatureCollection", "features": [_feature(name=None)]})
    with pytest.raises(ConfigurationError, match=r"districts\.geojson: feature 0 has no `name`"):
        make_router(Settings(mode="production", map_geojson=str(bad)))


@pytest.mark.parametrize(
    "url",
    [
        "https://tiles.bureau.example/{z}/{x}/{y}.png",
        "/tiles/{z}/{x}/{y}.png",
        "http://10.0.0.5/t/{z}/{y}/{x}",
    ],
)
def test_a_tile_url_with_its_placeholders_is_accepted(url: str) -> None:
    assert Settings(map_tile_url=url).map_tile_url == url


@pytest.mark.parametrize(
    "url",
    [
        "tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example/tiles.png",
        "//cdn.example/{z}/{x}/{y}.png",
        "javascript:alert(1)//{z}{x}{y}",
    ],
)
def test_a_tile_url_that_cannot_work_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="VIGIL_MAP_TILE_URL"):
        Settings(map_tile_url=url)
