"""Dataset discovery, the seeded split and the augmentation: pure logic on real photos."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from models.kitchen.data import CLASSES, SOURCES, TrainSet, discover, labelled_mask, read_labels, split


def test_discovery_maps_each_source_onto_the_models_classes(smoke_data: Path) -> None:
    samples = discover(smoke_data)
    assert len(samples) == 8
    by_source = {SOURCES[s.source].name: s for s in samples}
    assert set(by_source) == {"masks", "cigarettes", "fire"}
    cigarette_classes = {int(c) for s in samples if s.source == 1 for c in s.boxes[:, 0]}
    assert cigarette_classes == {CLASSES.index("cigarette")}
    fire_classes = {int(c) for s in samples if s.source == 2 for c in s.boxes[:, 0]}
    assert fire_classes == {CLASSES.index("fire"), CLASSES.index("smoke")}
    for s in samples:
        assert (s.boxes[:, 1:] >= 0).all() and (s.boxes[:, 1:] <= 1).all()
        assert (s.boxes[:, 3] > s.boxes[:, 1]).all() and (s.boxes[:, 4] > s.boxes[:, 2]).all()


def test_a_malformed_label_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n1 0.5 0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.txt:2: expected"):
        read_labels(path, SOURCES[0])
    path.write_text("7 0.5 0.5 0.1 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="class 7"):
        read_labels(path, SOURCES[0])


def test_the_split_is_seeded_disjoint_and_independent_of_order(smoke_data: Path) -> None:
    samples = discover(smoke_data)
    train, val = split(samples, 3, 0.5)
    assert {s.image for s in train}.isdisjoint({s.image for s in val})
    assert len(train) + len(val) == len(samples)
    _, again_val = split(list(reversed(samples)), 3, 0.5)
    assert {s.image for s in again_val} == {s.image for s in val}
    other = [split(samples, seed, 0.5)[1] for seed in range(10)]
    assert len({frozenset(s.image for s in v) for v in other}) > 1, "the seed must change the split"


def test_each_photo_is_only_scored_on_the_classes_its_source_labels() -> None:
    assert labelled_mask(0).tolist() == [1, 1, 1, 0, 0, 0]
    assert labelled_mask(1).tolist() == [0, 0, 0, 1, 0, 0]
    assert labelled_mask(2).tolist() == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("mosaic", [True, False])
def test_augmented_boxes_stay_inside_the_image_and_keep_their_classes(smoke_data: Path, mosaic: bool) -> None:
    dataset = TrainSet(discover(smoke_data), 160)
    rng = random.Random(0)
    seen = 0
    for _ in range(20):
        for i in range(len(dataset)):
            image, boxes, mask = dataset.item(i, rng, mosaic)
            assert image.shape == (160, 160, 3) and image.dtype == np.uint8
            assert (boxes[:, 1:] >= 0).all() and (boxes[:, 1:] <= 160).all()
            assert (boxes[:, 3] > boxes[:, 1]).all() and (boxes[:, 4] > boxes[:, 2]).all()
            assert set(boxes[:, 0].astype(int)) <= set(np.flatnonzero(mask))
            seen += len(boxes)
    assert seen > 0


def test_an_epoch_is_reproducible_from_its_seed(smoke_data: Path) -> None:
    dataset = TrainSet(discover(smoke_data), 128)
    first = [dataset.item(i, random.Random(42), True) for i in range(len(dataset))]
    second = [dataset.item(i, random.Random(42), True) for i in range(len(dataset))]
    for (a, boxes_a, _), (b, boxes_b, _) in zip(first, second, strict=True):
        assert np.array_equal(a, b) and np.array_equal(boxes_a, boxes_b)


def test_evaluation_of_a_model_trained_on_the_old_split_drops_photos_it_saw(smoke_data: Path) -> None:
    from models.kitchen.data import held_out_for

    samples = discover(smoke_data)
    grouped = held_out_for(samples, 0, "grouped", 0.5)
    unseen = held_out_for(samples, 0, "file", 0.5)
    assert {s.image for s in unseen} <= {s.image for s in grouped}
    with pytest.raises(ValueError, match="trained_split"):
        held_out_for(samples, 0, "other")


def test_discovery_of_a_partial_root(tmp_path: Path, smoke_data: Path) -> None:
    import shutil

    shutil.copytree(smoke_data / "masks", tmp_path / "masks")
    with pytest.raises(FileNotFoundError, match="cigarettes"):
        discover(tmp_path)
    assert {s.source for s in discover(tmp_path, partial=True)} == {0}
    with pytest.raises(FileNotFoundError, match="none of"):
        discover(tmp_path / "empty", partial=True)
