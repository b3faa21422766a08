"""The import contract (pyproject.toml, [tool.importlinter]) holds on the tree, and it is not a
contract that passes whatever the code does: each planted violation below breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages' Python sources and the contract, to plant violations in."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.onnx", "__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_the_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("vigil/events.py", "import shell.cli", "vigil is not allowed to import shell"),
        ("vigil/topics.py", "from ingest import storage", "vigil is not allowed to import ingest"),
        ("ingest/payloads.py", "import detectors.telemetry", "ingest is not allowed to import detectors"),
        ("alerts/store.py", "import benchmarks.report", "alerts is not allowed to import benchmarks"),
        ("api/app.py", "import detectors.rules", "api is not allowed to import detectors"),
        ("detectors/telemetry.py", "import api.app", "detectors is not allowed to import api"),
    ],
)
def test_a_planted_violation_breaks_it(tree: Path, module: str, planted: str, broken: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _planted() -> None:\n    {planted}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert broken in " ".join(result.stdout.split()), result.stdout
