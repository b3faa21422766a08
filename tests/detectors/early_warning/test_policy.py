"""The warning state machine (`detectors.early_warning.policy`): raise, clear, cooldown."""

from __future__ import annotations

from detectors.early_warning import Policy, WarnState
from tests.detectors.early_warning.support import MIN, T0


def test_warn_state_policy() -> None:
    policy = Policy(threshold=0.5, clear_below=0.2, confirm_min=1, clear_after_min=2, cooldown_min=10)
    st = WarnState()
    steps = [(0, 0.9), (1, 0.1), (2, 0.3), (3, 0.1), (4, 0.1), (5, 0.9), (16, 0.9)]
    got = [(m, st.step(T0 + m * MIN, r, policy)) for m, r in steps]
    assert got == [(0, "raise"), (1, None), (2, None), (3, None), (4, "clear"), (5, None), (16, "raise")]
