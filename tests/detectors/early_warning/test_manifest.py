"""The manifest check (`detectors.early_warning.manifest`): one out of step with the code is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.early_warning import FEATURES, load_manifest
from tests.detectors.early_warning.support import write_manifest
from vigil.errors import ConfigurationError


def test_a_manifest_out_of_step_with_the_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="features differ"):
        load_manifest(write_manifest(tmp_path, features=list(FEATURES[:-1])))
    with pytest.raises(ConfigurationError, match="clear_below"):
        load_manifest(write_manifest(tmp_path, clear_below=0.9))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_manifest(tmp_path / "nope.toml")
