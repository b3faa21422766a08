"""A device's feature window (`detectors.early_warning.track`): late and impossible readings, and
the device's own limits."""

from __future__ import annotations

import pytest

from detectors.early_warning import FEATURES, MIN_POINTS, DeviceTrack
from tests.detectors.early_warning.support import DEFAULTS, MIN, T0


def test_late_and_impossible_readings_are_ignored() -> None:
    track = DeviceTrack("freezer")
    assert track.add(T0 + 5 * MIN, {"temperature": -22.0})
    assert not track.add(T0 + 4 * MIN, {"temperature": 30.0})  # late
    assert track.add(T0 + 6 * MIN, {"temperature": 999.0})  # new minute, impossible value
    assert list(track.points["temperature"]) == [(T0 // MIN + 5, -22.0)]


def test_own_limits_from_the_attributes_move_the_margin() -> None:
    track = DeviceTrack("freezer")
    for i in range(MIN_POINTS):
        track.add(T0 + i * MIN, {"temperature": -20.0})
    ts = T0 + (MIN_POINTS - 1) * MIN
    found = track.features(ts, {}, DEFAULTS)
    own = track.features(ts, {"max_temp_c": -15.0, "duration_s": 1800}, DEFAULTS)
    assert found is not None and own is not None
    margin, hold = FEATURES.index("margin"), FEATURES.index("hold_min")
    assert found[1][0, margin] == pytest.approx(0.5) and found[1][0, hold] == pytest.approx(15)
    assert own[1][0, margin] == pytest.approx(1.25) and own[1][0, hold] == pytest.approx(30)
