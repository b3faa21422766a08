"""An eight-photo dataset tree in the layout of ../shared/datasets, built from the demo's bundled
photos and their original labels plus two fire-set frames kept under tests/data, so the kitchen
tests run on any machine (the shared datasets are not part of the repository)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.photo_scene import bundled_photos

LABELS = Path(__file__).resolve().parents[2] / "data" / "kitchen-smoke"


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    for photo in bundled_photos():
        source = "cigarettes" if photo.stem.startswith("cigarette") else "masks"
        (root / source / "images").mkdir(parents=True, exist_ok=True)
        (root / source / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / source / "images" / photo.name)
        shutil.copy(
            LABELS / source / "labels" / f"{photo.stem}.txt", root / source / "labels" / f"{photo.stem}.txt"
        )
    shutil.copytree(LABELS / "fire", root / "fire", ignore=shutil.ignore_patterns("*.md"))
    return root


@pytest.fixture(scope="session")
def smoke_model(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch model at 96 px: its weights mean little, its graph is the real thing."""
    pytest.importorskip("torch", reason="needs the `train` extra (the test command installs it)")
    work = tmp_path_factory.mktemp("smoke-train")
    cmd = [sys.executable, "-m", "models.kitchen.train", "--data", str(smoke_data), "--work-dir", str(work)]
    cmd += ["--out", str(work / "out"), "--epochs", "1", "--size", "96", "--batch", "2", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return work / "out" / "kitchen.toml"
