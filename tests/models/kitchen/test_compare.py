"""Training runs side by side (models/kitchen/compare.py): pure logic over history files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.kitchen.compare import comparison, history, main


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_runs_sit_side_by_side_per_evaluated_epoch(tmp_path: Path) -> None:
    pre = _write(
        tmp_path / "pre.jsonl",
        [
            {"epoch": 1, "loss": 3.0, "elapsed_s": 60},  # not evaluated: no row of its own
            {"epoch": 3, "map50": 0.5, "per_class_ap50": {"a": 0.6, "b": 0.4}, "elapsed_s": 180},
            {"epoch": 6, "map50": 0.7, "per_class_ap50": {"a": 0.8, "b": 0.6}, "elapsed_s": 360},
        ],
    )
    scratch = _write(tmp_path / "s.jsonl", [{"epoch": 3, "map50": 0.1, "per_class_ap50": {"a": 0.2}}])
    lines = comparison([("pre", history(pre)), ("scratch", history(scratch))], ["a", "b"])
    assert lines[0] == "| epoch | pre: mAP@0.5 (a, b) | scratch: mAP@0.5 (a, b) |"
    assert lines[2] == "| 3 | 0.500 (a 0.600, b 0.400) | 0.100 (a 0.200, b nan) |"
    assert lines[3] == "| 6 | 0.700 (a 0.800, b 0.600) | — |"
    assert "\npre: 3 epochs in 6 min of wall time." in lines


def test_the_command_refuses_a_missing_history_and_a_bare_path(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["pre=" + str(tmp_path / "none.jsonl"), "--classes", "a"])
    assert missing.value.code == 2
    with pytest.raises(SystemExit) as bare:
        main([str(tmp_path / "none.jsonl"), "--classes", "a"])
    assert bare.value.code == 2
    assert history(tmp_path / "none.jsonl") == []
