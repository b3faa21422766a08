"""`vigil models list|eval` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shell.cli import main


def test_eval_prints_per_class_figures_and_writes_them_as_json(
    smoke_model: Path, smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    code = main(["models", "eval", "--model", str(smoke_model), "--data", str(smoke_data), "--split", "all"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 photos (all)" in printed and "mAP@.5:.95" in printed
    main(
        [
            "models",
            "eval",
            "--model",
            str(smoke_model),
            "--data",
            str(smoke_data),
            "--split",
            "all",
            "--json",
            str(out),
        ]
    )
    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert (
        rows["with_mask"]["boxes"] == 2
        and rows["without_mask"]["boxes"] == 2
        and rows["cigarette"]["boxes"] == 2
    )
    # Partial labels: each class is scored only on the photos of the set that labels it; the fire
    # photos, whose classes this model lacks, are named and left out.
    assert rows["with_mask"]["images"] == 4 and rows["cigarette"]["images"] == 2
    assert "fire" not in rows and "fire/: model kitchen has none of its classes: not scored" in printed
    for row in rows.values():
        assert 0.0 <= row["ap50_95"] <= row["ap50"] <= 1.0 or row["boxes"] == 0


def test_eval_without_data_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "eval", "--model", "sim-markers", "--data", str(tmp_path / "none")]) == 2
    assert "no datasets at" in capsys.readouterr().err


def test_list_names_the_vision_models_and_marks_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    printed = capsys.readouterr().out
    assert "sim-markers          320x320" in printed
    assert "early-warning" in printed and "not for cameras" in printed


def test_eval_quantize_and_card_need_no_torch(smoke_data: Path) -> None:
    """Only training needs the `train` extra: measuring a model must work on a service machine."""
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import models.kitchen.quantize, models.kitchen.card, models.kitchen.thresholds\n"
        "from shell.cli import main\n"
        f"args = ['models', 'eval', '--model', 'kitchen', '--data', {str(smoke_data)!r}, '--split', 'all']\n"
        "raise SystemExit(main(args))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "without_mask" in done.stdout


def test_eval_accepts_a_root_with_only_some_sets_and_says_what_it_cannot_score(
    smoke_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    shutil.copytree(smoke_data / "fire", tmp_path / "fire")
    # The simulator's marker model has no fire or smoke class: the fire set is named, not scored.
    assert main(["models", "eval", "--model", "sim-markers", "--data", str(tmp_path), "--split", "all"]) == 0
    assert "fire/: model sim-markers has none of its classes: not scored" in capsys.readouterr().out
    shutil.copytree(smoke_data / "masks", tmp_path / "masks")
    assert main(["models", "eval", "--model", "sim-markers", "--data", str(tmp_path), "--split", "all"]) == 0
    printed = capsys.readouterr().out
    assert "4 photos (all)" in printed and "no-mask false alarms" in printed
    assert "masks/" not in printed  # the marker model has without_mask: the mask set is scored
