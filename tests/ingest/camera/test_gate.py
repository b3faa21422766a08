"""The motion gate and the thumbnail/sharpness helpers, on synthetic and drawn frames."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from ingest.camera.gate import (
    THUMB_SIZE,
    GateCounters,
    GateDecision,
    MotionGate,
    frame_features,
    sharpness,
    thumbnail,
)
from tests.ingest.camera import Frame, Room, add_noise, person

STEP_MS = 200  # 5 fps, the fastest sampling ingest uses


def _with_square(frame: Frame, x: int, y: int, size: int = 30, colour: int = 30) -> Frame:
    out = frame.copy()
    cv2.rectangle(out, (x, y), (x + size - 1, y + size - 1), (colour, colour, colour), -1)
    return out


@pytest.fixture(scope="module")
def room() -> Room:
    return Room(seed=3)


# --- helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(480, 640, 3), (480, 640, 4), (480, 640), (720, 1280, 3), (100, 90, 3)])
def test_thumbnail_is_a_small_grey_image_of_fixed_size(shape: tuple[int, ...]) -> None:
    frame = np.full(shape, 100, np.uint8)
    thumb = thumbnail(frame)
    assert thumb.dtype == np.uint8
    assert thumb.shape == (THUMB_SIZE[1], THUMB_SIZE[0])
    assert int(thumb.min()) == int(thumb.max()) == 100


def test_thumbnail_averages_sensor_noise_away(room: Room) -> None:
    a, b = thumbnail(room.view()), thumbnail(room.view())
    assert int(cv2.absdiff(a, b).max()) <= 2  # ±3 per pixel becomes at most a level or two


def test_frame_features_match_the_separate_helpers(room: Room) -> None:
    frame = room.view()
    thumb, sharp = frame_features(frame)
    assert np.array_equal(thumb, thumbnail(frame))
    assert sharp == pytest.approx(sharpness(frame))
    assert sharpness(frame) > 10 * sharpness(cv2.GaussianBlur(frame, (0, 0), 6))


@pytest.mark.parametrize("shape", [(480, 640, 2), (480,), (4, 480, 640, 3)])
def test_thumbnail_refuses_what_is_not_an_image(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="grey, BGR or BGRA"):
        thumbnail(np.zeros(shape, np.uint8))


# --- the gate -------------------------------------------------------------------------------------


def test_the_first_frame_is_sent(room: Room) -> None:
    gate = MotionGate()
    assert gate.check(thumbnail(room.view()), 1_000) == GateDecision(True, "first", 0.0)
    assert gate.counters == GateCounters(sent=1, gated=0, keyframes=0)


def test_a_static_noisy_view_is_gated(room: Room) -> None:
    gate = MotionGate()
    decisions = [gate.check(thumbnail(room.view()), i * STEP_MS) for i in range(40)]
    assert decisions[0].reason == "first"
    assert all(d == GateDecision(False, "static", 0.0) for d in decisions[1:])
    assert gate.counters == GateCounters(sent=1, gated=39, keyframes=0)


def test_auto_exposure_flutter_is_gated(room: Room) -> None:
    gate = MotionGate()
    gate.check(thumbnail(room.view()), 0)
    for i, gain in enumerate([1.02, 0.98, 1.03, 0.97], start=1):
        frame = cv2.convertScaleAbs(room.view(), alpha=gain)
        assert not gate.check(thumbnail(frame), i * STEP_MS).send


@pytest.mark.parametrize("x0", [100, 105, 333])  # aligned with the 8 px thumbnail grid and not
def test_a_30px_object_that_appears_or_moves_is_sent(room: Room, x0: int) -> None:
    gate = MotionGate()
    gate.check(thumbnail(room.view()), 0)
    # Appears (on the floor, 40 grey levels darker than it): one thumbnail footprint, ~14 pixels.
    appeared = gate.check(thumbnail(_with_square(room.view(), x0, 380)), STEP_MS)
    assert appeared.send and appeared.reason == "motion"
    # Moves by its own size: its old and its new place both differ.
    moved = gate.check(thumbnail(_with_square(room.view(), x0 + 30, 380)), 2 * STEP_MS)
    assert moved.send and moved.reason == "motion"
    assert moved.score > gate.motion_fraction
    # Stops: gated again.
    assert not gate.check(thumbnail(_with_square(room.view(), x0 + 30, 380)), 3 * STEP_MS).send


def test_slow_drift_is_sent_once_it_adds_up(room: Room) -> None:
    """A rat creeping 3 px per frame never differs enough from the previous frame, but does from
    the last sent one."""
    frames = [thumbnail(_with_square(room.view(), 200 + 3 * i, 400, size=24)) for i in range(12)]
    for before, after in itertools.pairwise(frames):  # frame-to-frame: always static
        pairwise = MotionGate()
        pairwise.check(before, 0)
        assert not pairwise.check(after, STEP_MS).send
    gate = MotionGate()
    decisions = [gate.check(thumb, i * STEP_MS) for i, thumb in enumerate(frames)]
    assert any(d.reason == "motion" for d in decisions[1:])  # well before the 10 s keyframe


def test_a_person_walking_through_is_sent(room: Room) -> None:
    gate = MotionGate()
    gate.check(thumbnail(room.view()), 0)
    decisions = [
        gate.check(thumbnail(person(room.view(), x)), (i + 1) * STEP_MS)
        for i, x in enumerate(range(0, 480, 40))
    ]
    assert all(d.send and d.reason == "motion" for d in decisions)


def test_a_static_view_gets_a_keyframe_every_interval(room: Room) -> None:
    gate = MotionGate(keyframe_interval_ms=10_000)
    thumb = thumbnail(room.view())
    reasons = {ts: gate.check(thumb, ts).reason for ts in range(0, 25_001, 500)}
    sent = {ts: reason for ts, reason in reasons.items() if reason != "static"}
    assert sent == {0: "first", 10_000: "keyframe", 20_000: "keyframe"}
    assert gate.counters == GateCounters(sent=3, gated=48, keyframes=2)


def test_motion_restarts_the_keyframe_interval(room: Room) -> None:
    gate = MotionGate(keyframe_interval_ms=10_000)
    still, moved = thumbnail(room.view()), thumbnail(_with_square(room.view(), 300, 380))
    gate.check(still, 0)
    assert gate.check(moved, 6_000).reason == "motion"
    assert gate.check(moved, 12_000).reason == "static"  # 6 s after the last sent frame
    assert gate.check(moved, 16_000).reason == "keyframe"


def test_a_looped_video_restarting_its_clock_sends_a_keyframe_and_goes_on(room: Room) -> None:
    gate = MotionGate(keyframe_interval_ms=10_000)
    thumb = thumbnail(room.view())
    for ts in range(0, 8_001, 1_000):
        gate.check(thumb, ts)
    restart = gate.check(thumb, 0)  # the file looped
    assert restart == GateDecision(True, "keyframe", 0.0)
    assert [gate.check(thumb, ts).reason for ts in range(1_000, 10_001, 1_000)] == ["static"] * 9 + [
        "keyframe"
    ]


def test_frames_a_little_out_of_order_are_gated_not_reset(room: Room) -> None:
    gate = MotionGate()
    thumb = thumbnail(room.view())
    gate.check(thumb, 5_000)
    assert gate.check(thumb, 5_400).reason == "static"
    assert gate.check(thumb, 5_100).reason == "static"  # a pushed frame that arrived late
    assert gate.counters == GateCounters(sent=1, gated=2, keyframes=0)


def test_a_thumbnail_of_another_size_restarts_the_gate(room: Room) -> None:
    gate = MotionGate()
    gate.check(thumbnail(room.view()), 0)
    small = np.asarray(
        cv2.resize(thumbnail(room.view()), (40, 30), interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    assert gate.check(small, STEP_MS).reason == "first"


def test_reset_sends_the_next_frame_as_first(room: Room) -> None:
    gate = MotionGate()
    thumb = thumbnail(room.view())
    gate.check(thumb, 0)
    gate.reset()
    assert gate.check(thumb, STEP_MS).reason == "first"
    assert gate.counters.sent == 2


def test_the_threshold_decides_what_counts_as_motion() -> None:
    base = np.full((60, 80), 100, np.uint8)
    changed = base.copy()
    changed[10:20, 10:20] = 100 + 20  # 100 pixels (score 0.0208) brighter by 20 levels
    strict = MotionGate(pixel_threshold=30)
    strict.check(base, 0)
    assert not strict.check(changed, 100).send
    loose = MotionGate(motion_fraction=0.05)
    loose.check(base, 0)
    assert not loose.check(changed, 100).send
    default = MotionGate()
    default.check(base, 0)
    decision = default.check(changed, 100)
    assert decision.send and decision.score == pytest.approx(100 / 4800, abs=40 / 4800)


def test_a_sensor_noise_only_thumbnail_never_triggers() -> None:
    rng = np.random.default_rng(0)
    gate = MotionGate()
    base = rng.integers(60, 200, (60, 80)).astype(np.uint8)
    for i in range(50):
        noisy = np.clip(base.astype(np.int16) + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
        decision = gate.check(noisy, i * STEP_MS)
        assert decision.send == (i == 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"motion_fraction": 0.0}, "motion_fraction"),
        ({"motion_fraction": 1.5}, "motion_fraction"),
        ({"motion_fraction": float("nan")}, "motion_fraction"),
        ({"pixel_threshold": 0}, "pixel_threshold"),
        ({"pixel_threshold": 255}, "pixel_threshold"),
        ({"keyframe_interval_ms": 0}, "keyframe_interval_ms"),
        ({"keyframe_interval_ms": -5}, "keyframe_interval_ms"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MotionGate(**kwargs)  # type: ignore[arg-type]


def test_a_thumbnail_that_is_not_grey_uint8_is_refused() -> None:
    gate = MotionGate()
    with pytest.raises(ValueError, match="2-D uint8"):
        gate.check(np.zeros((60, 80, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="2-D uint8"):
        gate.check(np.zeros((60, 80), np.float32), 0)


def test_add_noise_never_repeats_a_frame() -> None:
    """The fixture's own promise, which the gate tests lean on."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    assert not np.array_equal(add_noise(frame, 1), add_noise(frame, 2))


def test_thumbnail_refuses_a_frame_that_is_not_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        thumbnail(np.zeros((480, 640, 3), np.float32))
