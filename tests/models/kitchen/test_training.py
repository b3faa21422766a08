"""The training command end to end on eight real photos (CI's smoke run), and its resumption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detectors.vision.manifest import load_manifest

pytest.importorskip("torch", reason="training needs the `train` extra (the test command installs it)")

SMOKE = ["--epochs", "2", "--size", "96", "--batch", "2", "--eval-every", "1", "--threads", "1"]


def train(data: Path, work: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "models.kitchen.train", "--data", str(data), "--work-dir", str(work)]
    return subprocess.run(
        [*cmd, "--out", str(out), *SMOKE, *extra], capture_output=True, text=True, timeout=240, check=False
    )


def outputs(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32)
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_a_smoke_run_writes_a_loadable_model_resumes_to_the_same_weights_and_refuses_other_settings(
    smoke_data: Path, tmp_path: Path
) -> None:
    straight = train(smoke_data, tmp_path / "a", tmp_path / "a-out")
    assert straight.returncode == 0, straight.stderr[-2000:]
    manifest = load_manifest(tmp_path / "a-out" / "kitchen.toml")  # checks the graph against it too
    assert manifest.classes == ("without_mask", "with_mask", "mask_worn_incorrectly", "cigarette")
    assert manifest.input_size == (96, 96)
    assert outputs(manifest.path).shape == (1, 8, (12 * 12) + (6 * 6) + (3 * 3))
    history = (tmp_path / "a" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and '"map50"' in history[-1]

    first = train(smoke_data, tmp_path / "b", tmp_path / "b-out", "--stop-after", "1")
    assert first.returncode == 0 and "run again to resume" in first.stderr
    assert not (tmp_path / "b-out" / "kitchen.onnx").exists()
    # A checkpoint made with other settings is refused, never resumed into a mixed run.
    other = train(smoke_data, tmp_path / "b", tmp_path / "b-out", "--seed", "5")
    assert other.returncode == 2 and "use --fresh" in other.stderr
    resumed = train(smoke_data, tmp_path / "b", tmp_path / "b-out")
    assert resumed.returncode == 0 and "resuming after epoch 1" in resumed.stderr
    straight_out = outputs(tmp_path / "a-out" / "kitchen.onnx")
    assert np.allclose(straight_out, outputs(tmp_path / "b-out" / "kitchen.onnx"))


def test_the_fire_set_trains_a_fire_and_smoke_model_that_raises_the_fire_codes(
    smoke_data: Path, tmp_path: Path
) -> None:
    fire = ("--sets", "fire", "--name", "fire-smoke", "--epochs", "1")  # after SMOKE's 2: the last wins
    done = train(smoke_data, tmp_path / "w", tmp_path / "o", *fire)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = load_manifest(tmp_path / "o" / "fire-smoke.toml")
    assert manifest.classes == ("fire", "smoke")
    codes = {n: v.code for n, v in manifest.violations.items()}
    assert codes == {"fire": "FIRE_OPEN_FLAME", "smoke": "FIRE_SMOKE"}
    assert outputs(manifest.path).shape == (1, 6, (12 * 12) + (6 * 6) + (3 * 3))
    assert "fire and smoke" in manifest.description
    unknown = train(smoke_data, tmp_path / "x", tmp_path / "y", "--sets", "rats")
    assert unknown.returncode == 2 and "sets must be some of masks, cigarettes, fire" in unknown.stderr
