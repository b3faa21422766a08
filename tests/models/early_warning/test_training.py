"""The training script's data generation (`models.early_warning`): deterministic, split by whole
episodes, the runtime's own feature path, labels on the rule engine's firings.

Only onnxruntime and numpy here: scikit-learn and skl2onnx are the `train` extra, absent in CI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from detectors import early_warning as runtime
from detectors.early_warning import FEATURES, EarlyWarning
from models.early_warning import episodes, simulation
from models.early_warning.episodes import make_episode
from models.early_warning.evaluate import device_risk
from models.early_warning.simulation import HORIZON_MIN, messages, simulate
from vigil.events import DeviceEvent, Telemetry


def test_training_script_imports_without_the_train_extra() -> None:
    code = "import sys, models.early_warning.train; assert 'sklearn' not in sys.modules, 'sklearn'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_script_and_runtime_compute_the_same_features(ew: EarlyWarning) -> None:
    # One code path: the script builds its rows with the runtime's DeviceTrack ...
    assert vars(simulation)["DeviceTrack"] is runtime.DeviceTrack
    ep = make_episode("boiler", "pressure_creep", "test-identity:0")
    sim = simulate(ep)
    assert sim.x.shape[1] == len(FEATURES) and sim.ts.size > 100
    # ... and the scorer fed the same messages scores exactly what the rows say.
    expected_ts, expected_risk = device_risk(sim, ew.predict(sim.x))
    got: list[tuple[int, float]] = []
    fresh = EarlyWarning()
    for msg in messages(ep):
        if isinstance(msg, Telemetry):
            r = fresh.score(ep.device, msg.ts, msg.metrics)
            if r is not None:
                got.append((msg.ts, r))
        elif isinstance(msg, DeviceEvent):
            fresh.event(ep.device, msg.ts, msg.event)
    assert [t for t, _ in got] == expected_ts.tolist()
    assert np.array_equal(np.array([r for _, r in got]), expected_risk)


def test_feature_and_label_generation_is_deterministic() -> None:
    ep = make_episode("freezer", "door_left_open", "test-determinism:0")
    a, b = simulate(ep), simulate(ep)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.ts, b.ts)
    assert a.fires == b.fires and (a.y == 1).any()  # the door left open makes the rule fire
    assert episodes.plan(7) == episodes.plan(7)
    parts = episodes.split(episodes.plan(7), 7)
    assert parts == episodes.split(episodes.plan(7), 7)
    keys = [{e.key for e in part} for part in parts.values()]
    assert sum(map(len, keys)) == len(set().union(*keys)) == len(episodes.plan(7))  # disjoint, whole


def test_labels_say_the_rule_fires_within_the_horizon() -> None:
    ep = make_episode("pressure_vessel", "pressure_creep", "test-labels:0")
    sim = simulate(ep)
    [fire] = sim.fires["PRESSURE_VESSEL_OVER_PRESSURE"][:1]
    horizon = HORIZON_MIN * 60_000
    onset = ep.fault_start_ms
    assert onset is not None
    positive = sim.ts[sim.y == 1]
    assert positive.size and positive.min() >= max(onset, fire - horizon) and positive.max() < fire
    assert np.all(sim.y[(sim.ts < fire - horizon)] == 0)
