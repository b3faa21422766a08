"""Grouped splits (issue 23): every copy of a source photo, every frame of a video and every run
of neighbouring frames lands on one side of the split."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.cli import default_data
from models.kitchen.groups import (
    file_held_out,
    group_keys,
    grouped_held_out,
    leaked,
    never_trained_by_file_rule,
    source_of,
)

SYNTHETIC = [
    "train_408_jpg.rf.ca70f341efdaa3aec87bf942715d367f.jpg",
    "train_408_jpg.rf.facf826b8291566fc4c4ceff6586e6c2.jpg",
    "valid_408_jpg.rf.0123456789abcdef0123456789abcdef.jpg",
    "train_1448_jpeg.rf.aaaa.jpg",
    "valid_12_jpg.rf.bbbb.jpg",
    "test_fire2_mp4-29_jpg.rf.cccc.jpg",
    "train_fire2_mp4-51_jpg.rf.dddd.jpg",
    "valid_newsmoke1_mp4-3_jpg.rf.eeee.jpg",
    "train_img_52_jpg.rf.ffff.jpg",
    "train_img_52--2-_jpg.rf.ab12.jpg",
    "valid_img_60_jpg.rf.ab13.jpg",
    "train_img_200_jpg.rf.ab14.jpg",
    "maksssksksss379.jpg",
    "maksssksksss380.jpg",
]


def test_group_keys_read_sources_videos_and_frame_runs_from_names() -> None:
    assert source_of(SYNTHETIC[0]) == source_of(SYNTHETIC[2]) == "408_jpg"  # prefix stripped
    keys = group_keys(SYNTHETIC)
    assert keys[SYNTHETIC[0]] == keys[SYNTHETIC[1]] == keys[SYNTHETIC[2]] == "source:408_jpg"
    assert keys[SYNTHETIC[5]] == keys[SYNTHETIC[6]] == "video:fire2_mp4"
    assert keys[SYNTHETIC[7]] == "video:newsmoke1_mp4"
    # 52, its second copy and 60 are neighbours (gap 8); 200 is far from them.
    assert keys[SYNTHETIC[8]] == keys[SYNTHETIC[9]] == keys[SYNTHETIC[10]] != keys[SYNTHETIC[11]]
    assert group_keys(SYNTHETIC, gap=5)[SYNTHETIC[10]] != keys[SYNTHETIC[8]]
    assert keys["maksssksksss379.jpg"] != keys["maksssksksss380.jpg"]  # a plain photo is its own source
    assert len(set(keys.values())) == 9


@pytest.mark.parametrize("seed", range(20))
def test_no_synthetic_group_straddles_the_split(seed: int) -> None:
    held = grouped_held_out("fire", SYNTHETIC, seed, 0.3)
    assert not leaked("fire", SYNTHETIC, held)
    assert held == grouped_held_out("fire", list(reversed(SYNTHETIC)), seed, 0.3)  # order-free


def test_the_seed_changes_the_grouped_split() -> None:
    assert len({frozenset(grouped_held_out("fire", SYNTHETIC, s, 0.3)) for s in range(10)}) > 1


def _names(root: Path, name: str) -> list[str]:
    return sorted(p.name for p in (root / name / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def shared() -> Path:
    root = default_data()
    if not all((root / s / "images").is_dir() for s in ("masks", "cigarettes", "fire")):
        pytest.skip(f"the shared datasets are not at {root} (set VIGIL_DATASETS; CI has them)")
    return root


def test_on_the_real_sets_no_group_straddles_the_grouped_split(shared: Path) -> None:
    for name, fraction_range in (
        ("masks", (0.13, 0.17)),
        ("cigarettes", (0.13, 0.17)),
        ("fire", (0.1, 0.25)),
    ):
        names = _names(shared, name)
        held = grouped_held_out(name, names, 0, 0.15)
        assert not leaked(name, names, held), name
        assert fraction_range[0] <= len(held) / len(names) <= fraction_range[1], name


def test_the_old_per_file_split_leaked_and_the_grouped_one_does_not(shared: Path) -> None:
    """The counts of issue 23: 119 of the 172 held-out cigarette photos had a training copy."""
    names = _names(shared, "cigarettes")
    old = {n for n in names if file_held_out("cigarettes", n, 0, 0.15)}
    assert (len(leaked("cigarettes", names, old)), len(old)) == (119, 172)
    new = grouped_held_out("cigarettes", names, 0, 0.15)
    assert len(leaked("cigarettes", names, new)) == 0
    # Every photo the shipped model never saw (53) stays in the grouped held-out set.
    assert never_trained_by_file_rule("cigarettes", names, 0, 0.15) <= new
    masks = _names(shared, "masks")
    assert {n for n in masks if file_held_out("masks", n, 0, 0.15)} <= grouped_held_out(
        "masks", masks, 0, 0.15
    )
