"""The tamper detector, on drawn kitchen frames at 1 fps through the real thumbnail helpers."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from ingest.camera.gate import frame_features
from ingest.camera.tamper import TamperDetector, TamperState
from tests.ingest.camera import Frame, H, Room, W, add_noise, person

STEP = 1_000  # 1 fps
T0 = 12_000  # when the scripted trouble starts: the baseline is learned by then (10 frames, 10 s)
HOLD = 10_000  # the default raise_after_ms and clear_after_ms
Make = Callable[[int], Frame]


@pytest.fixture
def room() -> Room:
    return Room(seed=7)


def feed(
    det: TamperDetector, make: Make, start: int, end: int, step: int = STEP
) -> list[tuple[int, TamperState]]:
    """Frames `make(ts)` for ts in [start, end), through frame_features and the detector."""
    out = []
    for ts in range(start, end, step):
        thumb, sharp = frame_features(make(ts))
        out.append((ts, det.update(thumb, sharp, ts)))
    return out


def learned(room: Room, **kwargs: int) -> TamperDetector:
    det = TamperDetector(**kwargs)
    assert all(not s.tampered for _, s in feed(det, lambda _: room.view(), 0, T0))
    assert not det.learning
    return det


def flips(states: list[tuple[int, TamperState]]) -> list[tuple[int, bool, str | None]]:
    return [(ts, s.tampered, s.kind) for ts, s in states if s.changed]


def _flat(level: int) -> Make:
    return lambda ts: add_noise(np.full((H, W, 3), level, np.uint8), ts // STEP)


def _hand(ts: int) -> Frame:
    """A hand over the lens: light leaking in from one side, a smooth gradient with no edges."""
    ramp = np.linspace(10, 70, W, dtype=np.float32)
    return add_noise(np.repeat(np.tile(ramp, (H, 1))[:, :, None], 3, axis=2).astype(np.uint8), ts // STEP)


def _defocused(room: Room) -> Make:
    return lambda ts: np.asarray(cv2.GaussianBlur(room.view(), (0, 0), 4), dtype=np.uint8)


def _turned(room: Room) -> Make:
    return lambda ts: room.view(800)


TROUBLES: dict[str, tuple[str, Callable[[Room], Make]]] = {
    "blackout": ("blackout", lambda room: _flat(0)),
    "dark cover": ("covered", lambda room: _flat(30)),
    "lens cap": ("covered", lambda room: _flat(7)),
    "white paper": ("covered", lambda room: _flat(200)),
    "hand": ("covered", lambda room: _hand),
    "defocus": ("defocused", _defocused),
    "turned": ("turned_away", _turned),
}


# --- raising and clearing -------------------------------------------------------------------------


@pytest.mark.parametrize("trouble", TROUBLES)
def test_each_kind_is_raised_after_the_hold_and_not_before(room: Room, trouble: str) -> None:
    kind, make = TROUBLES[trouble]
    det = learned(room)
    states = feed(det, make(room), T0, T0 + HOLD + 5 * STEP)
    before = [s for ts, s in states if ts < T0 + HOLD]
    assert all(
        not s.tampered and not s.changed and s.kind is None and "s of 10 s" in s.detail for s in before
    )
    raised = dict(states)[T0 + HOLD]
    assert raised == TamperState(True, kind, T0, True, raised.detail)  # type: ignore[arg-type]
    assert flips(states) == [(T0 + HOLD, True, kind)]
    assert all(s.tampered and s.kind == kind and s.since_ms == T0 for _, s in states if _ > T0 + HOLD)


def test_a_frozen_feed_is_raised_after_frozen_after_ms(room: Room) -> None:
    det = learned(room)
    stuck = room.view()
    states = feed(det, lambda _: stuck, T0, T0 + 35_000)
    # The frame at T0 is new; from T0 + 1 s on, every frame repeats it.
    assert flips(states) == [(T0 + STEP + 30_000, True, "frozen")]
    assert dict(states)[T0 + STEP + 30_000].since_ms == T0 + STEP
    assert "no sensor noise" in dict(states)[T0 + 20_000].detail


def test_a_frozen_picture_under_a_ticking_clock_is_still_frozen(room: Room) -> None:
    det = learned(room)
    stuck = room.view()

    def with_clock(ts: int) -> Frame:
        frame = stuck.copy()
        cv2.putText(
            frame, f"{ts // 1000 % 60:02d}", (560, 30), cv2.FONT_HERSHEY_PLAIN, 1.5, (255, 255, 255), 2
        )
        return frame

    states = feed(det, with_clock, T0, T0 + 35_000)
    assert [kind for _, tampered, kind in flips(states) if tampered] == ["frozen"]


def test_one_noisy_frame_restarts_the_frozen_hold(room: Room) -> None:
    det = learned(room)
    stuck = room.view()
    states = feed(det, lambda ts: room.view() if ts == T0 + 20_000 else stuck, T0, T0 + 55_000)
    # Frozen from T0 + 1 s; a live frame at T0 + 20 s; the repeats start again at T0 + 22 s.
    assert flips(states) == [(T0 + 22_000 + 30_000, True, "frozen")]


@pytest.mark.parametrize("trouble", TROUBLES)
def test_each_kind_clears_after_the_view_is_normal_for_the_hold(room: Room, trouble: str) -> None:
    kind, make = TROUBLES[trouble]
    det = learned(room)
    feed(det, make(room), T0, T0 + HOLD + STEP)
    t1 = T0 + HOLD + STEP
    states = feed(det, lambda _: room.view(), t1, t1 + HOLD + 3 * STEP)
    assert all(s.tampered and not s.changed and s.kind == kind for ts, s in states if ts < t1 + HOLD)
    cleared = dict(states)[t1 + HOLD]
    # The clearing update still names the episode, so its notice matches the raise.
    assert cleared == TamperState(False, kind, T0, True, cleared.detail)  # type: ignore[arg-type]
    after = dict(states)[t1 + HOLD + STEP]
    assert after == TamperState(False, None, None, False, after.detail)


def test_an_abnormal_frame_restarts_the_clear_hold(room: Room) -> None:
    det = learned(room)
    feed(det, _flat(30), T0, T0 + HOLD + STEP)
    t1 = T0 + HOLD + STEP
    blip = t1 + 6_000
    states = feed(det, lambda ts: _flat(30)(ts) if ts == blip else room.view(), t1, t1 + 20_000)
    assert flips(states) == [(blip + STEP + HOLD, False, "covered")]


def test_changed_is_true_exactly_once_per_flip(room: Room) -> None:
    det = learned(room)
    script = [
        (_flat(30), 15_000),
        (lambda _: room.view(), 15_000),
        (_turned(room), 15_000),
        (lambda _: room.view(), 15_000),
    ]
    states: list[tuple[int, TamperState]] = []
    ts = T0
    for make, length in script:
        states += feed(det, make, ts, ts + length)
        ts += length
    assert [(tampered, kind) for _, tampered, kind in flips(states)] == [
        (True, "covered"),
        (False, "covered"),
        (True, "turned_away"),
        (False, "turned_away"),
    ]


# --- what must not raise ----------------------------------------------------------------------------


def test_nothing_is_raised_while_learning_a_normal_scene(room: Room) -> None:
    det = TamperDetector()
    states = feed(det, lambda ts: person(room.view(), ts // 20 - 100), 0, T0)
    assert all(not s.tampered and not s.changed for _, s in states)
    assert "learning" in states[0][1].detail
    assert not det.learning


def test_a_brief_occlusion_raises_nothing(room: Room) -> None:
    det = learned(room)
    states = feed(det, lambda ts: _flat(30)(ts) if T0 <= ts < T0 + 2_000 else room.view(), T0, T0 + 30_000)
    assert flips(states) == []
    assert "covered" not in states[-1][1].detail and "flat" in states[0][1].detail


def test_occlusions_shorter_than_the_hold_with_gaps_raise_nothing(room: Room) -> None:
    det = learned(room)
    states = feed(
        det, lambda ts: room.view() if (ts - T0) % 9_000 == 8_000 else _flat(30)(ts), T0, T0 + 60_000
    )
    assert flips(states) == []


def test_people_working_in_front_of_the_camera_raise_nothing(room: Room) -> None:
    det = learned(room)

    def shift(ts: int) -> Frame:
        t = (ts - T0) / 1000
        frame = room.view()
        if t < 20:  # one walks through, left to right
            frame = person(frame, int(-160 + 40 * t))
        elif t < 50:  # one stands at the counter
            frame = person(frame, 240)
        elif t < 80:  # one stands close, half the frame wide, floor to ceiling
            frame = person(frame, 150, y=0, w=320, h=480)
        else:  # two walk in opposite directions
            frame = person(person(frame, int(40 * (t - 80))), int(500 - 40 * (t - 80)))
        return frame

    states = feed(det, shift, T0, T0 + 95_000, step=500)
    assert flips(states) == []
    assert all(s.detail.startswith("view normal") for _, s in states)


def test_dimmed_lights_and_steam_raise_nothing(room: Room) -> None:
    det = learned(room)

    def evening(ts: int) -> Frame:
        t = (ts - T0) / 1000
        dimmed = cv2.convertScaleAbs(room.view(), alpha=max(0.4, 1 - t / 60))  # lights dim to 40%
        frame = np.asarray(dimmed, dtype=np.uint8)
        if 20 <= t < 40:  # a cloud of steam: washed out toward white
            frame = np.asarray(cv2.addWeighted(frame, 0.5, np.full_like(frame, 220), 0.5, 0), dtype=np.uint8)
        return frame

    assert flips(feed(det, evening, T0, T0 + 90_000)) == []


# --- the baseline ----------------------------------------------------------------------------------


def test_a_turned_view_is_never_learned_however_long(room: Room) -> None:
    det = learned(room)
    states = feed(det, _turned(room), T0, T0 + 600_000, step=5_000)  # ten minutes
    assert all(s.tampered for ts, s in states if ts >= T0 + HOLD)
    back = T0 + 600_000
    states = feed(det, lambda _: room.view(), back, back + 15_000)
    assert flips(states) == [(back + HOLD, False, "turned_away")]


def test_an_abnormal_view_below_the_hold_is_not_learned_either(room: Room) -> None:
    """Turned away 8 s in every 10 for ten minutes never raises, and never becomes the normal view."""
    det = learned(room)
    end = T0 + 600_000
    states = feed(det, lambda ts: room.view() if (ts - T0) % 10_000 >= 8_000 else room.view(800), T0, end)
    assert flips(states) == []
    states = feed(det, _turned(room), end, end + 12_000)
    assert flips(states) == [(end + HOLD, True, "turned_away")]


def test_a_camera_covered_from_the_start_learns_only_once_uncovered(room: Room) -> None:
    det = TamperDetector()
    states = feed(det, _flat(30), 0, 15_000)
    assert flips(states) == [(HOLD, True, "covered")]
    assert det.learning
    states = feed(det, lambda _: room.view(), 15_000, 30_000)
    assert flips(states) == [(15_000 + HOLD, False, "covered")]
    assert not det.learning
    states = feed(det, _turned(room), 30_000, 45_000)
    assert flips(states) == [(30_000 + HOLD, True, "turned_away")]


def test_relearn_accepts_a_new_view(room: Room) -> None:
    det = learned(room)
    feed(det, _turned(room), T0, T0 + HOLD + STEP)
    det.relearn()
    assert det.learning
    t1 = T0 + HOLD + STEP
    states = feed(det, _turned(room), t1, t1 + 15_000)
    assert flips(states) == [(t1 + HOLD, False, "turned_away")]
    assert not det.learning
    states = feed(det, lambda _: room.view(), t1 + 15_000, t1 + 30_000)  # the old view is now the odd one
    assert flips(states) == [(t1 + 15_000 + HOLD, True, "turned_away")]


# --- time ----------------------------------------------------------------------------------------


def test_a_looped_video_restarts_the_hold_instead_of_breaking_it(room: Room) -> None:
    det = learned(room)
    states = feed(det, _flat(30), T0, T0 + 8_000)
    states += feed(det, _flat(30), 0, 12_000)  # the file looped: its clock starts again
    assert flips(states) == [(HOLD, True, "covered")]
    assert dict(states)[HOLD].since_ms == 0


def test_a_normal_looped_video_raises_nothing(room: Room) -> None:
    det = learned(room)
    states = []
    for _ in range(3):
        states += feed(det, lambda _: room.view(), 0, 20_000)
    assert flips(states) == []


def test_frames_a_little_out_of_order_do_not_restart_the_hold(room: Room) -> None:
    det = learned(room)
    feed(det, _flat(30), T0, T0 + 9_001)
    thumb, sharp = frame_features(_flat(30)(0))
    assert not det.update(thumb, sharp, T0 + 8_500).tampered  # a pushed frame that arrived late
    raised = det.update(thumb, sharp, T0 + HOLD)
    assert (raised.tampered, raised.changed, raised.since_ms) == (True, True, T0)


def test_a_gap_in_the_feed_is_not_counted_as_held(room: Room) -> None:
    det = learned(room)
    states = feed(det, _flat(30), T0, T0 + 1_000)
    states += feed(det, _flat(30), T0 + 120_000, T0 + 135_000)  # two minutes without frames
    assert flips(states) == [(T0 + 120_000 + HOLD, True, "covered")]


# --- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raise_after_ms": -1},
        {"clear_after_ms": -1},
        {"frozen_after_ms": -5},
        {"learn_frames": 0},
        {"learn_ms": -1},
        {"adapt_ms": 0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, int]) -> None:
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        TamperDetector(**kwargs)


def test_zero_holds_raise_and_clear_on_the_frame(room: Room) -> None:
    det = learned(room, raise_after_ms=0, clear_after_ms=0)
    states = feed(det, _flat(30), T0, T0 + 2_000) + feed(det, lambda _: room.view(), T0 + 2_000, T0 + 4_000)
    assert flips(states) == [(T0, True, "covered"), (T0 + 2_000, False, "covered")]


def test_a_thumbnail_that_is_not_grey_uint8_is_refused() -> None:
    det = TamperDetector()
    with pytest.raises(ValueError, match="2-D uint8"):
        det.update(np.zeros((60, 80, 3), np.uint8), 1.0, 0)
    with pytest.raises(ValueError, match="2-D uint8"):
        det.update(np.zeros((60, 80), np.float32), 1.0, 0)


def test_a_thumbnail_of_another_size_starts_learning_again(room: Room) -> None:
    det = learned(room)
    thumb, sharp = frame_features(room.view())
    small = np.asarray(cv2.resize(thumb, (40, 32), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    state = det.update(small, sharp, T0)
    assert not state.tampered
    assert det.learning


def test_a_thumbnail_size_change_while_learning_starts_learning_again(room: Room) -> None:
    det = TamperDetector()
    feed(det, lambda _: room.view(), 0, 5_000)
    for ts in range(5_000, 17_000, STEP):
        thumb, sharp = frame_features(room.view())
        small = np.asarray(cv2.resize(thumb, (40, 32), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        assert not det.update(small, sharp, ts).tampered
    assert not det.learning
