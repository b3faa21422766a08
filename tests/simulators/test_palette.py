"""The palette's rules: scene colours keep clear of the markers, and ordinary frames never show a
solid marker area (the simulator's model would report a violation that is not there)."""

from __future__ import annotations

import itertools
import math

import pytest

from simulators import camera
from simulators import palette as pal
from simulators.camera import KitchenScene, Script, has_solid_area


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.dist(a, b) / 255  # the palette's measure: Euclidean on a 0..1 scale


def _scene_colours() -> dict[str, tuple[int, int, int]]:
    colours = {
        name: value
        for name, value in vars(pal).items()
        if name.isupper() and isinstance(value, tuple) and value not in pal.MARKERS.values()
    }
    # The camera's own dark frames count too.
    colours |= {"camera.COVERED": camera.COVERED, "camera.BLACK": camera.BLACK}
    return colours


def test_the_scene_colours_are_found() -> None:
    names = set(_scene_colours())
    assert {"WALL", "FLOOR", "MASK", "HAIR", "BIN", "BIN_LID", "TILE_LINE", "camera.COVERED"} <= names
    assert "SKIN_BAND" not in names  # the one deliberate marker-coloured part, kept 10 px high


@pytest.mark.parametrize("name", sorted(_scene_colours()))
def test_every_scene_colour_keeps_clear_of_every_marker(name: str) -> None:
    colour = _scene_colours()[name]
    for marker, marker_colour in pal.MARKERS.items():
        d = _distance(colour, marker_colour)
        assert d >= pal.MIN_DISTANCE, f"{name} {colour} is {d:.3f} from {marker}"


def test_markers_are_told_apart_from_each_other() -> None:
    for a, b in itertools.combinations(pal.MARKERS.values(), 2):
        assert _distance(a, b) >= pal.MIN_DISTANCE


def test_the_checker_sees_a_marker_and_nothing_smaller() -> None:
    frame = KitchenScene(seed=1).render(0.0)
    assert not has_solid_area(frame, pal.RAT_FUR)
    frame[100:132, 200:232] = pal.RAT_FUR
    assert has_solid_area(frame, pal.RAT_FUR)
    frame[100:132, 200:232] = pal.WALL
    frame[100:131, 200:240] = pal.RAT_FUR  # 31 px high: under the rule
    assert not has_solid_area(frame, pal.RAT_FUR)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ordinary_frames_show_no_marker_area(seed: int) -> None:
    scene = KitchenScene(seed=seed)
    for t in range(0, 120, 7):  # workers in many places, over several wandering periods
        frame = scene.render(float(t))
        for marker, colour in pal.MARKERS.items():
            assert not has_solid_area(frame, colour), f"{marker} area at t={t}, seed {seed}"
        # The eyes band is skin, but never 11 px high anywhere.
        assert not has_solid_area(frame, pal.BARE_FACE, width=8, height=11)


@pytest.mark.parametrize("kind", ["lens_covered", "blackout", "defocus", "turned_away", "freeze"])
def test_camera_faults_show_no_marker_area(kind: str) -> None:
    scene = KitchenScene(Script.parse([{"kind": kind, "start_s": 0, "end_s": 60}]))
    for t in (1.0, 17.0, 44.0):
        frame = scene.render(t)
        for colour in pal.MARKERS.values():
            assert not has_solid_area(frame, colour)
