"""The frames contract and camera registration checks (pure logic)."""

from __future__ import annotations

import time

import pytest

from vigil.cameras import Zone, check_source, parse_zones, zones_json
from vigil.errors import ConfigurationError, InvalidMessage
from vigil.frames import FrameMeta, decode_frame_meta

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
NOW = time.time_ns() // 1_000_000


def meta(**kw: object) -> FrameMeta:
    base: dict[str, object] = dict(
        camera_id="cam-1", enterprise_id="ent", site_id="site", ts=NOW, seq=3, reason="motion"
    )
    base.update(kw)
    return FrameMeta(**base)  # type: ignore[arg-type]


def test_headers_round_trip() -> None:
    original = meta()
    assert decode_frame_meta(original.headers(), JPEG, now_ms=NOW) == original


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda h: [x for x in h if x[0] != "camera_id"], "bad_header"),
        (lambda h: [(k, b"a/b" if k == "camera_id" else v) for k, v in h], "bad_header"),
        (lambda h: [(k, b"soon" if k == "ts" else v) for k, v in h], "bad_header"),
        (lambda h: [(k, b"5" if k == "ts" else v) for k, v in h], "bad_timestamp"),
        (lambda h: [(k, b"bored" if k == "reason" else v) for k, v in h], "bad_header"),
        (lambda h: [(k, b"image/png" if k == "content-type" else v) for k, v in h], "bad_content_type"),
        (lambda h: [(k, "caf\u00e9".encode() if k == "site_id" else v) for k, v in h], "bad_header"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(edit: object, reason: str) -> None:
    with pytest.raises(InvalidMessage) as err:
        decode_frame_meta(edit(meta().headers()), JPEG, now_ms=NOW)  # type: ignore[operator]
    assert err.value.reason == reason


@pytest.mark.parametrize("value", [None, b"", b"\x89PNG\r\n\x1a\n...."])
def test_a_value_that_is_not_a_jpeg_is_refused(value: bytes | None) -> None:
    with pytest.raises(InvalidMessage) as err:
        decode_frame_meta(meta().headers(), value, now_ms=NOW)
    assert err.value.reason == "not_jpeg"


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://user:pw@10.0.0.5:554/stream1",
        "http://cam.local/video.mjpg",
        "push",
        "/srv/demo.avi",
        "file:///srv/a.mp4",
    ],
)
def test_supported_sources(source: str) -> None:
    assert check_source(source)


@pytest.mark.parametrize(
    "source", ["ftp://x/y", "rtsp:///nohost", "relative/video.mp4", "javascript:alert(1)"]
)
def test_unsupported_sources_are_refused(source: str) -> None:
    with pytest.raises(ConfigurationError):
        check_source(source)


def test_zones_parse_and_apply() -> None:
    zones = parse_zones(
        [{"name": "prep", "points": [[0, 0], [1, 0], [1, 0.5]], "codes": ["KITCHEN_NO_MASK"]}]
    )
    assert zones == (Zone("prep", ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5)), frozenset({"KITCHEN_NO_MASK"})),)
    assert zones[0].applies_to("KITCHEN_NO_MASK") and not zones[0].applies_to("KITCHEN_RODENT")
    assert not zones[0].exclude


def test_an_exclusion_zone_survives_a_round_trip_and_ordinary_zones_stay_as_they_were() -> None:
    raw = [
        {
            "name": "stove",
            "points": [[0, 0], [0.5, 0], [0.5, 1]],
            "codes": ["FIRE_OPEN_FLAME"],
            "exclude": True,
        },
        {"name": "prep", "points": [[0, 0], [1, 0], [1, 0.5]], "codes": ["KITCHEN_NO_MASK"]},
    ]
    zones = parse_zones(raw)
    assert [z.exclude for z in zones] == [True, False]
    assert zones_json(zones) == [{**z, "points": [[float(x), float(y)] for x, y in z["points"]]} for z in raw]


@pytest.mark.parametrize(
    "raw",
    [
        "not a list",
        [{"points": [[0, 0], [1, 1]]}],
        [{"points": [[0, 0], [1, 1], [2, 0]]}],
        [{"points": [[0, 0], [1, 1], [True, 0]]}],
        [{"points": [[0, 0], [1, 1], [1, 0]], "codes": ["NOT_A_CODE"]}],
        [{"points": [[0, 0], [1, 1], [1, 0]], "exclude": "yes"}],
        [{"points": [[0, 0], [1, 1], [1, 0]], "codes": ["FIRE_OPEN_FLAME"], "excluded": True}],
    ],
)
def test_bad_zones_are_refused(raw: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_zones(raw)
