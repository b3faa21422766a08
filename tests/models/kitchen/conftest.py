"""A six-photo dataset tree in the layout of ../shared/datasets, built from the demo's bundled
photos and their original labels, so the kitchen tests run on any machine (the shared datasets
are not part of the repository)."""

from __future__ import annotations

import shutil
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
    return root
