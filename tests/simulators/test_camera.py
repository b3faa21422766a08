"""The kitchen scene: reproducible frames, scripted violations where and only when scripted, and
camera faults that look like what a tamper check measures."""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from simulators import palette as pal
from simulators.camera import (
    DEMO_LOOP_S,
    DEMO_SCRIPT,
    KitchenScene,
    Script,
    ScriptedEvent,
    has_solid_area,
    write_video,
)


def _scene(*events: dict[str, object], **kwargs: object) -> KitchenScene:
    return KitchenScene(Script.parse(list(events)), **kwargs)  # type: ignore[arg-type]


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel, the largest change over the three channels."""
    d: np.ndarray = cv2.absdiff(a, b).max(axis=2)
    return d


def _sharpness(frame: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


# -- frames -------------------------------------------------------------------------------------


def test_render_is_a_pure_function_of_seed_script_and_time() -> None:
    a, b = KitchenScene(DEMO_SCRIPT, seed=3), KitchenScene(DEMO_SCRIPT, seed=3)
    for t in (0.0, 12.3, 61.0):
        frame = a.render(t)
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, b.render(t))
        assert np.array_equal(frame, a.render(t))
    assert not np.array_equal(a.render(5.0), KitchenScene(DEMO_SCRIPT, seed=4).render(5.0))


@pytest.mark.parametrize("size", [(320, 240), (1280, 720)])
def test_frame_size_is_configurable(size: tuple[int, int]) -> None:
    scene = _scene({"kind": "no_mask", "start_s": 0, "end_s": 5}, width=size[0], height=size[1])
    assert scene.render(1.0).shape == (size[1], size[0], 3)
    if size[0] >= 640:  # marker areas scale with the frame
        assert has_solid_area(scene.render(1.0), pal.BARE_FACE, 40, 36)


def test_consecutive_frames_differ_a_little_but_are_never_identical() -> None:
    scene = KitchenScene(seed=5)
    frames = [scene.render(i / 5) for i in range(26)]  # 5 s at 5 fps
    for a, b in itertools.pairwise(frames):
        d = _diff(a, b)
        assert d.any()  # sensor noise, at least
        assert float(cv2.absdiff(a, b).mean()) < 4  # mostly noise (2.3 on average) ...
        assert (d > 40).mean() < 0.03  # ... and the workers' outlines shifting by a pixel or two
    # ... but over a few seconds they do move: more than noise changes.
    assert (_diff(frames[0], frames[-1]) > 40).sum() > 500


def test_static_scene_differs_by_noise_only() -> None:
    scene = _scene({"kind": "turned_away", "start_s": 0, "end_s": 60})
    d = cv2.absdiff(scene.render(1.0), scene.render(1.2))
    assert d.any() and d.max() <= 6  # ± 3 grey levels on each side


# -- violations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "colour", "extra", "size"),
    [
        ("no_mask", pal.BARE_FACE, {"worker": 1}, (40, 36)),
        ("smoking", pal.CIGARETTE_EMBER, {"worker": 2}, (32, 32)),
        ("rat", pal.RAT_FUR, {"position": 0.2}, (48, 32)),  # inside its 76x46 body
    ],
)
def test_a_violation_shows_its_marker_exactly_while_scripted(
    kind: str, colour: tuple[int, int, int], extra: dict[str, object], size: tuple[int, int]
) -> None:
    scene = _scene({"kind": kind, "start_s": 10, "end_s": 20, **extra})
    for t in (10.0, 12.5, 15.0, 19.9):
        assert scene.active(t) == {kind}
        frame = scene.render(t)
        assert has_solid_area(frame, colour), t
        assert has_solid_area(frame, colour, *size), t
    for t in (0.0, 9.9, 20.0, 25.0):
        assert scene.active(t) == set()
        assert not has_solid_area(scene.render(t), colour), t


def test_the_rat_crosses_the_floor_left_to_right() -> None:
    scene = _scene({"kind": "rat", "start_s": 0, "end_s": 8})
    floor_y = scene.regions()["floor"][1]
    xs = []
    for t in (0.0, 4.0, 7.9):
        mask = cv2.inRange(scene.render(t), np.array(pal.RAT_FUR) - 12, np.array(pal.RAT_FUR) + 12)
        ys, x = np.nonzero(mask)
        assert ys.min() >= floor_y - 25  # on the floor (its ear may poke above the band's edge)
        xs.append(float(np.median(x)))
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        assert (stats[1:, cv2.CC_STAT_WIDTH] >= 56).any() and (stats[1:, cv2.CC_STAT_HEIGHT] >= 34).any()
    assert xs[0] < 120 and xs[2] > 520 and xs[0] < xs[1] < xs[2]


def test_violations_overlap() -> None:
    scene = _scene(
        {"kind": "no_mask", "start_s": 0, "end_s": 10, "worker": 0},
        {"kind": "rat", "start_s": 5, "end_s": 10},
    )
    assert scene.active(6.0) == {"no_mask", "rat"}
    frame = scene.render(6.0)
    assert has_solid_area(frame, pal.BARE_FACE) and has_solid_area(frame, pal.RAT_FUR)


# -- camera faults ------------------------------------------------------------------------------


def test_lens_covered_is_dark_and_flat_but_not_dead() -> None:
    frame = _scene({"kind": "lens_covered", "start_s": 0, "end_s": 10}).render(3.0)
    assert frame.mean() < 15 and frame.std() < 4
    assert frame.std() > 0  # still a live sensor


def test_blackout_is_pure_black() -> None:
    frame = _scene({"kind": "blackout", "start_s": 0, "end_s": 10}).render(3.0)
    assert not frame.any()


def test_defocus_wipes_out_the_detail() -> None:
    normal = KitchenScene(seed=2).render(4.0)
    blurred = _scene({"kind": "defocus", "start_s": 0, "end_s": 10}, seed=2).render(4.0)
    assert _sharpness(blurred) < 0.1 * _sharpness(normal)
    # The blur is optical: the sensor noise comes after it, as the motion gate will see.
    assert abs(float(blurred.mean()) - float(normal.mean())) < 5


def test_turned_away_shows_another_place_and_stays_there() -> None:
    scene = _scene({"kind": "turned_away", "start_s": 5, "end_s": 60}, seed=1)
    normal, away = scene.render(4.0), scene.render(6.0)
    assert float(cv2.absdiff(normal, away).mean()) > 25
    assert float(cv2.absdiff(away, scene.render(50.0)).mean()) < 3  # the same place, just noise


def test_a_frozen_feed_repeats_one_frame_bit_for_bit() -> None:
    scene = _scene({"kind": "freeze", "start_s": 10, "end_s": 20}, seed=9)
    frozen = scene.render(10.0)
    assert np.array_equal(frozen, KitchenScene(seed=9).render(10.0))  # the frame when it stuck
    for t in (10.2, 14.0, 19.9):
        assert np.array_equal(scene.render(t), frozen)
    assert not np.array_equal(scene.render(20.0), frozen)


def test_tamper_hides_the_violation_it_overlaps() -> None:
    scene = _scene(
        {"kind": "no_mask", "start_s": 0, "end_s": 10},
        {"kind": "lens_covered", "start_s": 5, "end_s": 10},
    )
    assert scene.active(6.0) == {"no_mask", "lens_covered"}
    assert not has_solid_area(scene.render(6.0), pal.BARE_FACE)


# -- the script ---------------------------------------------------------------------------------


def test_the_demo_loop() -> None:
    scene = KitchenScene(DEMO_SCRIPT, loop_s=DEMO_LOOP_S)
    timeline = {5.0: set(), 15.0: {"no_mask"}, 30.0: set(), 40.0: {"smoking"}, 50.0: set()}
    timeline |= {60.0: {"rat"}, 70.0: set(), 80.0: {"lens_covered"}, 100.0: set()}
    for t, kinds in timeline.items():
        assert scene.active(t) == kinds
        assert scene.active(t + 2 * DEMO_LOOP_S) == kinds  # it repeats
    assert DEMO_SCRIPT.duration_s < DEMO_LOOP_S


def test_parse_accepts_a_toml_table() -> None:
    script = Script.parse(
        tomllib.loads(
            """
            [[events]]
            kind = "smoking"
            start_s = 1
            end_s = 2.5
            worker = 2
            [[events]]
            kind = "rat"
            start_s = 3
            end_s = 9
            position = 1
            """
        )
    )
    assert script.events == (
        ScriptedEvent("smoking", 1.0, 2.5, worker=2),
        ScriptedEvent("rat", 3, 9, position=1),
    )
    assert script.duration_s == 9.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"kind": "fire", "start_s": 0, "end_s": 1}], "unknown event kind 'fire'"),
        ([{"kind": "rat", "start_s": 5, "end_s": 5}], "end_s (5.0) must be after start_s"),
        ([{"kind": "rat", "start_s": 5, "end_s": 2}], "must be after"),
        ([{"kind": "rat", "start_s": -1, "end_s": 2}], "start_s >= 0"),
        ([{"kind": "no_mask", "start_s": 0, "end_s": 1, "worker": 3}], "worker 3 out of range"),
        ([{"kind": "no_mask", "start_s": 0, "end_s": 1, "worker": -1}], "worker -1 out of range"),
        ([{"kind": "no_mask", "start_s": 0, "end_s": 1, "worker": True}], "worker must be an integer"),
        ([{"kind": "no_mask", "start_s": 0, "end_s": 1, "worker": 1.0}], "worker must be an integer"),
        ([{"kind": "rat", "start_s": "0", "end_s": 1}], "start_s must be a number"),
        ([{"kind": "rat", "start_s": 0, "end_s": 1, "position": 1.5}], "position 1.5 out of range"),
        ([{"kind": "rat", "start_s": 0, "end_s": 1, "worker": 0}], "worker applies only to"),
        ([{"kind": "no_mask", "start_s": 0, "end_s": 1, "position": 0}], "position applies only to rat"),
        ([{"kind": "rat", "start_s": 0, "end_s": 1, "speed": 2}], "unknown keys ['speed']"),
        ([{"kind": "rat", "start_s": 0}], "missing ['end_s']"),
        ([{"kind": "rat", "start_s": 0, "end_s": 1}, "rat"], "event 1: expected a table"),
        ("rat", "a list of event tables"),
        ({"event": []}, "exactly one key, 'events'"),
    ],
)
def test_parse_rejects_bad_scripts(spec: object, message: str) -> None:
    with pytest.raises(
        ValueError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        Script.parse(spec)  # type: ignore[arg-type]


def test_the_scene_checks_the_script_fits() -> None:
    script = Script.parse([{"kind": "smoking", "start_s": 0, "end_s": 1, "worker": 2}])
    with pytest.raises(ValueError, match="worker 2 but only 2 workers"):
        KitchenScene(script, workers=2)
    with pytest.raises(ValueError, match="cuts the script"):
        KitchenScene(DEMO_SCRIPT, loop_s=60)


# -- video files --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_write_video_reads_back(tmp_path: Path, suffix: str) -> None:
    path = str(tmp_path / f"kitchen{suffix}")
    seen: list[tuple[int, int]] = []
    n = write_video(
        KitchenScene(DEMO_SCRIPT), path, seconds=2, fps=5, progress=lambda d, t: seen.append((d, t))
    )
    assert n == 10 and seen[-1] == (10, 10) and len(seen) == 10
    cap = cv2.VideoCapture(path)
    try:
        assert cap.isOpened()
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
        frames = []
        while (read := cap.read())[0]:
            frames.append(read[1])
    finally:
        cap.release()
    assert len(frames) == 10 and all(f.shape == (480, 640, 3) for f in frames)
