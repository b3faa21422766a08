"""The committed early-warning model, loaded once per test module: scoring is stateful per device,
so the tests that share it call `forget()` first."""

from __future__ import annotations

import pytest

from detectors.early_warning import EarlyWarning


@pytest.fixture(scope="module")
def ew() -> EarlyWarning:
    return EarlyWarning()
