"""Train the early-warning model on simulated devices, export it to ONNX, measure it, write its card.

    python -m models.train_early_warning [--seed 7] [--out models/] [--jobs 2]

needs the `train` extra (`pip install -e '.[train]'`: scikit-learn and skl2onnx); the runtime
(`detectors/early_warning.py`) needs only onnxruntime and numpy.

Data: simulated only. Episodes of the device simulators (`simulators/devices/`), each one device
of a watched profile, seeded: normal days (door openings, defrost cycles, daily load cycles, with
the device's options drawn at random) and faults after a stretch of normal operation (a freezer
or chiller whose compressor fails or whose door is left open; a boiler whose pressure creeps over
its rating, whose feed pump stops or which runs hot; a pressure vessel whose unloader sticks),
plus traps whose rule never fires (a thermostat hunting around the limit, a pressure that creeps
but stays under the rating, a door left open only a few minutes).

Rows: every episode's messages go through `detectors.early_warning.DeviceTrack`, exactly as the
runtime scorer feeds them, giving one row per watched metric per minute. Label: the metric's rule,
run by the real rule engine (`detectors.rules`) on the same messages, fires within the next
`HORIZON_MIN` minutes. Rows while the rule is already active, and positive rows before the fault
began (nothing to see yet), are left out of training.

Split: by whole episodes (seeded, per profile and kind): 60 % train, 20 % validation (to choose the
operating point), 20 % test (the figures reported), plus normal days at default settings (a second
false-warning check). Model: gradient-boosted trees (scikit-learn's GradientBoostingClassifier, fixed
seed), exported with skl2onnx. Writes `<out>/early-warning.onnx`, `.toml` (the manifest the runtime
reads) and `.md` (the model card, with the measured figures); the same seed gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np

from detectors.early_warning import (
    CHANNELS,
    CODE,
    FEATURE_HELP,
    FEATURES,
    MIN_POINTS,
    MINUTE_MS,
    PROFILES,
    WINDOW_MIN,
    DeviceTrack,
    Policy,
    WarnState,
    profile_defaults,
)
from detectors.rules import Rulebook, RuleEngine
from simulators.devices import Clock, Fault, make_device
from vigil.events import DeviceEvent, DeviceMessage, DeviceStatus, Telemetry
from vigil.progress import Progress
from vigil.registry import Device

NAME: Final = "early-warning"
TREES, DEPTH = 200, 3
NORMAL_STRIDE = 2  # of normal days' rows, train on every second minute
DEFAULT_DAYS = 20  # per profile: normal days at default settings, for a second false-warning check
HORIZON_MIN: Final = 30
OPSET: Final = 17
ML_OPSET: Final = 3
IR_VERSION: Final = 8  # loadable by every onnxruntime Vigil supports

# The warning policy around the threshold (the threshold itself is chosen on the validation set).
CLEAR_FRACTION: Final = 0.5  # the risk must fall under half the threshold ...
CLEAR_AFTER_MIN: Final = 10  # ... for this many consecutive minutes to clear the warning
COOLDOWN_MIN: Final = 60  # no new warning on a device within this long of a clear
# The false-warning budget on normal operation is 1 per 10 device-days; the threshold is chosen to
# spend at most a quarter of it on the validation days (80 device-days: two warnings at most),
# keeping the rest as headroom for days it has not seen.
FALSE_WARNING_BUDGET: Final = 0.1
VALIDATION_TARGET: Final = 0.025
THRESHOLDS: Final = tuple(round(0.05 + 0.01 * i, 2) for i in range(95))  # 0.05 ... 0.99
CONFIRM_CHOICES: Final = (1, 2)  # consecutive minutes at or above the threshold to raise

EPOCH: Final = datetime(2026, 1, 5, tzinfo=UTC)
ENTERPRISE, SITE = "sim-early-warning", "sim-site"

# Per profile and kind: how many episodes. `normal` days are 24 h; a fault follows a normal
# stretch of 0.5-6 h, and an hour of recovery follows the fault.
PLAN: Final[dict[str, dict[str, int]]] = {
    "freezer": {"normal": 200, "compressor_failure": 40, "door_left_open": 40, "hover": 15},
    "chiller": {"normal": 160, "compressor_failure": 40, "door_left_open": 40},
    "boiler": {"normal": 160, "pressure_creep": 30, "creep_under_rating": 10, "low_water": 30,
               "over_temperature": 20},
    "pressure_vessel": {"normal": 160, "pressure_creep": 40, "short_creep": 10},
}  # fmt: skip
# Kinds whose rule is meant to fire (the drifts a warning should precede); the others are traps.
DRIFTS: Final = frozenset({"compressor_failure", "door_left_open", "pressure_creep", "low_water",
                           "over_temperature"})  # fmt: skip
SPLITS: Final = (("train", 0.6), ("validation", 0.2), ("test", 0.2))


@dataclass(frozen=True, slots=True)
class Episode:
    key: str
    profile: str
    kind: str
    seed: str
    start_hour: float  # local (UTC) time of day at the start
    hours: float
    attributes: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()

    @property
    def device_id(self) -> str:
        return "ew-" + hashlib.sha256(self.key.encode()).hexdigest()[:12]

    @property
    def fault_start_ms(self) -> int | None:
        return self.clock.start_ms + round(self.faults[0].start_s * 1000) if self.faults else None

    @property
    def clock(self) -> Clock:
        return Clock(EPOCH + timedelta(hours=self.start_hour))

    @property
    def device(self) -> Device:
        return Device(self.device_id, ENTERPRISE, SITE, self.profile, dict(self.attributes))


def make_episode(profile: str, kind: str, seed: str) -> Episode:
    """One episode of `profile`, `kind` ("normal", a fault, a trap), drawn from `seed`."""
    r = random.Random(f"episode:{seed}")  # noqa: S311 - seeded simulation, not secrets
    start_hour = round(r.uniform(0, 24), 2)
    attributes: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if profile in ("freezer", "chiller"):
        if profile == "freezer":
            options["setpoint_c"] = round(r.uniform(-23.5, -21.5), 1)
            options["defrosts_per_day"] = r.choice([0, 2, 3, 4, 4, 6])
        else:
            options["setpoint_c"] = round(r.uniform(2.5, 4.5), 1)
        options["differential_c"] = round(r.uniform(1.2, 2.4), 1)
        options["ambient_c"] = round(r.uniform(15, 35), 1)
        options["door_openings_per_hour"] = round(
            r.choice([0.5, 1.0, 1.5, 1.5, 3.0, 6.0]) * r.uniform(0.7, 1.3), 2
        )
        attributes["duration_s"] = r.choice([600, 900, 900, 900, 1200, 1800])
    elif profile == "boiler":
        options["working_pressure_mpa"] = round(r.uniform(0.85, 1.05), 2)
        options["level_mm"] = round(r.uniform(110, 200))
    elif profile == "pressure_vessel":
        rated = r.choice([1.0, 1.6, 1.6, 1.6, 2.5])
        cut_out = round(rated * r.uniform(0.55, 0.72), 3)
        options["cut_out_mpa"] = cut_out
        options["cut_in_mpa"] = round(cut_out - rated * r.uniform(0.08, 0.15), 3)
        attributes["rated_pressure_mpa"] = rated

    if kind == "normal":
        return Episode(f"{profile}/{kind}/{seed}", profile, kind, seed, start_hour, 24.0, attributes, options)

    lead_s = round(r.uniform(0.5, 6.0) * 3600)
    params: dict[str, Any] = {}
    fault = kind
    if kind == "compressor_failure":
        duration = r.uniform(2.0, 5.0) * 3600
    elif kind == "door_left_open":
        duration = r.uniform(4, 45) * 60
    elif kind == "hover":
        params = {
            "around_c": round(-18.0 + r.uniform(-0.8, 0.0), 2),  # at or just under the default limit
            "swing_c": round(r.uniform(0.6, 1.5), 2),
            "period_min": round(r.uniform(8, 20), 1),
        }
        duration = r.uniform(1.0, 4.0) * 3600
    elif kind == "pressure_creep" and profile == "boiler":
        params = {"to_mpa": round(r.uniform(1.3, 1.6), 3), "ramp_min": round(r.uniform(5, 40), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 60)) * 60
    elif kind == "creep_under_rating":
        fault = "pressure_creep"
        params = {"to_mpa": round(r.uniform(1.1, 1.2), 3), "ramp_min": round(r.uniform(5, 40), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 60)) * 60
    elif kind == "low_water":
        params = {"rate_mm_per_min": round(r.uniform(2.0, 10.0), 2)}
        duration = r.uniform(40, 90) * 60
    elif kind == "over_temperature":
        params = {"to_c": round(r.uniform(200, 230), 1), "ramp_min": round(r.uniform(3, 30), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 40)) * 60
    elif kind == "pressure_creep":  # a vessel
        params = {"rate_mpa_per_min": round(r.uniform(0.01, 0.1), 4)}
        duration = r.uniform(60, 120) * 60
    elif kind == "short_creep":
        fault = "pressure_creep"
        params = {"rate_mpa_per_min": round(r.uniform(0.01, 0.03), 4)}
        duration = r.uniform(3, 10) * 60
    else:
        raise ValueError(f"unknown episode kind {kind!r}")
    duration = round(duration)
    faults = (Fault(fault, float(lead_s), float(lead_s + duration), params),)
    hours = (lead_s + duration + 3600) / 3600
    return Episode(
        f"{profile}/{kind}/{seed}", profile, kind, seed, start_hour, hours, attributes, options, faults
    )


def plan(seed: int | str) -> list[Episode]:
    return [
        make_episode(profile, kind, f"{seed}:{profile}:{kind}:{i}")
        for profile, kinds in PLAN.items()
        for kind, count in kinds.items()
        for i in range(count)
    ]


def plan_defaults(seed: int | str) -> list[Episode]:
    """Normal days of each profile at the simulators' and profiles' default settings (the shipped
    scenarios' devices), from a random time of day: a second held-out check of false warnings,
    never trained or chosen on."""
    out = []
    for profile in PLAN:
        for i in range(DEFAULT_DAYS):
            seed_i = f"{seed}:{profile}:defaults:{i}"
            start = round(random.Random(f"episode:{seed_i}").uniform(0, 24), 2)  # noqa: S311
            out.append(Episode(f"{profile}/defaults/{seed_i}", profile, "normal", seed_i, start, 24.0))
    return out


def split(episodes: Sequence[Episode], seed: int | str) -> dict[str, list[Episode]]:
    """Whole episodes to train / validation / test, seeded, in the same proportions per kind."""
    out: dict[str, list[Episode]] = {name: [] for name, _ in SPLITS}
    groups: dict[tuple[str, str], list[Episode]] = {}
    for ep in episodes:
        groups.setdefault((ep.profile, ep.kind), []).append(ep)
    r = random.Random(f"split:{seed}")  # noqa: S311 - a seeded split, not secrets
    for group in groups.values():
        shuffled = list(group)
        r.shuffle(shuffled)
        start = 0
        for i, (name, share) in enumerate(SPLITS):
            end = len(shuffled) if i == len(SPLITS) - 1 else start + round(share * len(shuffled))
            out[name] += shuffled[start:end]
            start = end
    return out


# --- simulation: messages, rows, labels -------------------------------------------------------------


def messages(ep: Episode) -> Iterator[DeviceMessage]:
    """The episode's device messages, as ingest would put them on Kafka (received when stamped)."""
    clock = ep.clock
    model = make_device(
        ep.profile, ep.device_id, seed=ep.seed, attributes=ep.attributes, options=ep.options,
        faults=ep.faults, clock=clock,
    )  # fmt: skip
    src = (ENTERPRISE, ep.device_id, SITE, ep.profile)
    steps = math.floor(ep.hours * 3600 / model.interval + 1e-9)
    for i in range(1, steps + 1):
        for m in model.step(i * model.interval):
            ts = clock.start_ms + round(m.t_s * 1000)
            body = m.body
            if m.kind == "telemetry":
                yield Telemetry(*src, ts, dict(body["metrics"]), ts)
            elif m.kind == "event":
                yield DeviceEvent(*src, ts, body["event"], dict(body["data"]), ts)
            else:
                yield DeviceStatus(*src, ts, bool(body["online"]), ts)


@cache
def _rulebook() -> Rulebook:
    return Rulebook()


@cache
def _defaults() -> dict[str, dict[str, float]]:
    return profile_defaults()


@dataclass(slots=True)
class Simulated:
    episode: Episode
    ts: np.ndarray  # (n,) int64: the row's event time
    channel: np.ndarray  # (n,) int64: index into CHANNELS
    x: np.ndarray  # (n, F) float32
    y: np.ndarray  # (n,) int8: 1 the rule fires within the horizon, 0 not, -1 left out
    fires: dict[str, list[int]]  # rule code -> the times it was raised
    minutes: float  # minutes of device time simulated


def simulate(ep: Episode) -> Simulated:
    """Run the episode through the runtime's feature path and the rule engine; label the rows."""
    device = ep.device
    engine = RuleEngine(_rulebook())
    track = DeviceTrack(ep.profile)
    defaults = _defaults()
    targets = {c.rule for c in track.channels}
    fires: dict[str, list[int]] = {code: [] for code in targets}
    spans: dict[str, list[tuple[int, int]]] = {code: [] for code in targets}
    open_since: dict[str, int] = {}
    ts_rows: list[int] = []
    ch_rows: list[int] = []
    x_rows: list[np.ndarray] = []
    last = 0
    for msg in messages(ep):
        last = msg.ts
        for v in engine.feed(msg, device) + engine.tick(engine.watermark):
            if v.code not in targets:
                continue
            if v.state == "active" and v.code not in open_since:
                open_since[v.code] = v.detected_at
                fires[v.code].append(v.detected_at)
            elif v.state == "cleared" and v.code in open_since:
                spans[v.code].append((open_since.pop(v.code), v.detected_at))
        if isinstance(msg, Telemetry):
            # What EarlyWarning.score does with a reading, call for call.
            if track.add(msg.ts, msg.metrics):
                found = track.features(msg.ts, device.attributes, defaults)
                if found is not None:
                    used, rows = found
                    ts_rows += [msg.ts] * len(used)
                    ch_rows += used
                    x_rows.append(rows)
        elif isinstance(msg, DeviceEvent):
            track.event(msg.ts, msg.event)
    for code, since in open_since.items():
        spans[code].append((since, last + 1))
    ts = np.asarray(ts_rows, dtype=np.int64)
    channel = np.asarray(ch_rows, dtype=np.int64)
    x = np.concatenate(x_rows) if x_rows else np.zeros((0, len(FEATURES)), np.float32)
    y = np.zeros(ts.size, dtype=np.int8)
    horizon = HORIZON_MIN * MINUTE_MS
    onset = ep.fault_start_ms
    for i, c in enumerate(CHANNELS):
        rows = np.flatnonzero(channel == i)
        if rows.size == 0:
            continue
        times = np.asarray(fires[c.rule], dtype=np.int64)
        t = ts[rows]
        if times.size:
            nxt = np.searchsorted(times, t, side="right")  # the first raise strictly after the row
            upcoming = times[np.minimum(nxt, times.size - 1)]
            y[rows] = ((nxt < times.size) & (upcoming - t <= horizon)).astype(np.int8)
        for start, stop in spans[c.rule]:
            y[rows[(t >= start) & (t < stop)]] = -1
        if onset is not None:
            y[rows[(t < onset) & (y[rows] == 1)]] = -1
    return Simulated(ep, ts, channel, x, y, fires, ep.hours * 60)


def simulate_all(episodes: Sequence[Episode], jobs: int, label: str) -> list[Simulated]:
    out: list[Simulated] = []
    with Progress(len(episodes), label, unit="episodes") as bar:
        if jobs <= 1:
            for ep in episodes:
                out.append(simulate(ep))
                bar.advance()
        else:
            with ProcessPoolExecutor(jobs) as pool:
                for sim in pool.map(simulate, episodes, chunksize=2):
                    out.append(sim)
                    bar.advance()
    return out


# --- evaluation: the warning policy on per-minute device risks --------------------------------------


def device_risk(sim: Simulated, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per scoring moment: its time and the device's risk (the highest of its rows), in order."""
    if sim.ts.size == 0:
        return sim.ts, p
    times, inverse = np.unique(sim.ts, return_inverse=True)
    risk = np.full(times.size, -1.0)
    np.maximum.at(risk, inverse, p)
    return times, risk


def raises(times: np.ndarray, risk: np.ndarray, policy: Policy) -> list[int]:
    """When warnings are raised, as `EarlyWarning.warnings` would raise them."""
    state = WarnState()
    out = []
    for t, r in zip(times.tolist(), risk.tolist(), strict=True):
        if state.step(t, r, policy) == "raise":
            out.append(t)  # when the warning goes out (its window_start may be earlier)
    return out


@dataclass(slots=True)
class Figures:
    threshold: float
    normal_days: float = 0.0
    normal_warnings: int = 0  # false ones: no rule fired within the horizon after them
    normal_fired: int = 0  # normal days on which a rule fired all the same
    faults: int = 0  # drift episodes whose rule fired after the fault began
    warned_before: int = 0
    leads: list[float] = field(default_factory=list)  # minutes, a miss counted as 0
    misses: list[str] = field(default_factory=list)
    faults_unfired: int = 0  # drift episodes whose rule did not fire (too short a fault)
    traps: int = 0
    trap_warnings: int = 0
    lead_in_days: float = 0.0  # normal operation before the faults
    lead_in_warnings: int = 0
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    normal_by_profile: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def false_rate(self) -> float:
        return self.normal_warnings / self.normal_days if self.normal_days else 0.0

    @property
    def warned_share(self) -> float:
        return self.warned_before / self.faults if self.faults else 0.0

    def lead(self, q: float) -> float:
        return float(np.percentile(self.leads, q)) if self.leads else 0.0


def evaluate(
    sims: Sequence[Simulated], risks: Sequence[tuple[np.ndarray, np.ndarray]], policy: Policy
) -> Figures:
    f = Figures(policy.threshold)
    for sim, (times, risk) in zip(sims, risks, strict=True):
        ep = sim.episode
        warned = raises(times, risk, policy)
        days = sim.minutes / 1440
        if ep.kind == "normal":
            # A badly tuned device can trip its rule in normal operation (a defrost of a freezer
            # set close to its limit): a warning the rule then confirms is not a false one.
            fired = sorted(t for times_ in sim.fires.values() for t in times_)
            false = [t for t in warned if not any(t <= x <= t + HORIZON_MIN * MINUTE_MS for x in fired)]
            f.normal_days += days
            f.normal_warnings += len(false)
            f.normal_fired += bool(fired)
            n, d = f.normal_by_profile.get(ep.profile, (0, 0.0))
            f.normal_by_profile[ep.profile] = (n + len(false), d + days)
            continue
        onset = ep.fault_start_ms
        assert onset is not None
        f.lead_in_days += (onset - ep.clock.start_ms) / MINUTE_MS / 1440
        f.lead_in_warnings += sum(1 for t in warned if t < onset)
        fired = sorted(t for times_ in sim.fires.values() for t in times_ if t >= onset)
        if ep.kind not in DRIFTS:
            f.traps += 1
            f.trap_warnings += sum(1 for t in warned if t >= onset)
            continue
        if not fired:
            f.faults_unfired += 1
            continue
        first = fired[0]
        before = [t for t in warned if onset <= t <= first]
        lead = (first - before[0]) / MINUTE_MS if before else 0.0
        f.faults += 1
        f.warned_before += lead > 0
        f.leads.append(lead)
        f.by_kind.setdefault(f"{ep.profile}/{ep.kind}", []).append(lead)
        if lead <= 0:
            f.misses.append(ep.key)
    return f


def make_policy(threshold: float, confirm_min: int) -> Policy:
    return Policy(threshold, round(threshold * CLEAR_FRACTION, 4), confirm_min, CLEAR_AFTER_MIN, COOLDOWN_MIN)


def choose_policy(
    sims: Sequence[Simulated], risks: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[Policy, Figures]:
    """For one and two confirming scores, the lowest threshold whose false warnings on the
    validation days stay within the target; of the two, the one warning more faults before their
    rule, then with the longer median lead, then the simpler (one score)."""
    best: tuple[tuple[float, float, int], Policy, Figures] | None = None
    for confirm in CONFIRM_CHOICES:
        for threshold in THRESHOLDS:
            p = make_policy(threshold, confirm)
            figures = evaluate(sims, risks, p)
            if figures.false_rate <= VALIDATION_TARGET:
                key = (figures.warned_share, figures.lead(50), -confirm)
                if best is None or key > best[0]:
                    best = (key, p, figures)
                break
    if best is None:  # nothing meets the target: the strictest policy
        p = make_policy(THRESHOLDS[-1], CONFIRM_CHOICES[-1])
        return p, evaluate(sims, risks, p)
    return best[1], best[2]


# --- training and export -----------------------------------------------------------------------------


def training_arrays(sims: Sequence[Simulated]) -> tuple[np.ndarray, np.ndarray]:
    """The rows to fit on: those not left out, of normal days every `NORMAL_STRIDE`-th minute (one
    minute's window is nearly the next one's; the faults keep every row)."""
    xs, ys = [], []
    for s in sims:
        keep = s.y >= 0
        if s.episode.kind == "normal":
            keep &= (s.ts // MINUTE_MS) % NORMAL_STRIDE == 0
        xs.append(s.x[keep])
        ys.append(s.y[keep])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def fit(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    # The classic GradientBoostingClassifier: skl2onnx cannot export HistGradientBoosting with the
    # onnx release Vigil uses (it writes booleans where onnx now wants ints).
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(
        n_estimators=TREES,
        max_depth=DEPTH,
        learning_rate=0.1,
        subsample=0.5,
        min_samples_leaf=50,
        random_state=seed,
    )
    model.fit(x, y)
    return model


def export(model: Any, seed: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        model,
        name=NAME,
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    onx.ir_version = IR_VERSION
    onx.producer_name = "vigil.models.train_early_warning"
    onx.producer_version = "1"
    onx.doc_string = (
        f"Vigil early warning: P(the limit rule fires within {HORIZON_MIN} min) per device metric "
        f"window. Trained on simulated devices only (seed {seed})."
    )
    del onx.metadata_props[:]
    entry = onx.metadata_props.add()
    entry.key, entry.value = "features", ",".join(FEATURES)
    return canonical(onx)


def canonical(onx: Any) -> bytes:
    """The model's bytes with its opset imports in a fixed order: skl2onnx lists them in set order,
    which changes with Python's hash seed from one run to the next."""
    imports = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in imports:
        onx.opset_import.add(domain=domain, version=version)
    return bytes(onx.SerializeToString())


def device_risks(model_bytes: bytes, sims: Sequence[Simulated]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each episode's per-minute device risk by the exported model, on onnxruntime as deployed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    out = []
    for s in sims:
        p = np.zeros(0)
        if s.x.shape[0]:
            (raw,) = session.run(["probabilities"], {"features": s.x})
            p = np.asarray(raw, dtype=np.float64)[:, 1]
        out.append(device_risk(s, p))
    return out


# --- manifest and model card -------------------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def manifest_text(policy: Policy, test: Figures, defaults: Figures, seed: int, counts: dict[str, Any]) -> str:
    lines = [
        "# The early-warning model (see early-warning.md), written by",
        "# `python -m models.train_early_warning`. detectors/early_warning.py reads it and refuses a",
        "# model whose features or channels differ from its own.",
        f"name = {_toml(NAME)}",
        f'file = "{NAME}.onnx"',
        'type = "tabular"',
        'data = "simulated only"',
        f"seed = {seed}",
        'input = "features"',
        f'input_shape = ["N", {len(FEATURES)}]  # float32 rows, one per watched metric of a device',
        'output = "probabilities"  # (N, 2): column 1 is P(the rule fires within horizon_min)',
        "output_column = 1",
        f"horizon_min = {HORIZON_MIN}",
        f"window_min = {WINDOW_MIN}",
        f"min_points = {MIN_POINTS}",
        f"threshold = {_toml(policy.threshold)}  # a device's risk (its highest row) at or above ...",
        f"confirm_min = {policy.confirm_min}  # ... for this many consecutive scores (minutes): warning",
        f"clear_below = {_toml(policy.clear_below)}  # cleared once under this for clear_after_min scores",
        f"clear_after_min = {policy.clear_after_min}",
        f"cooldown_min = {policy.cooldown_min}  # no new warning within this long of a clear",
        f'code = "{CODE}"',
        f"profiles = {_toml(list(PROFILES))}",
        "features = [",
        *(f'    "{name}",' for name in FEATURES),
        "]",
        "",
        "[evaluation]  # held-out simulated test episodes (never seen in training or validation)",
        f"faults = {test.faults}",
        f"warned_before_rule = {test.warned_before}",
        f"warned_before_rule_share = {_toml(test.warned_share)}",
        f"lead_median_min = {_toml(test.lead(50))}",
        f"lead_p10_min = {_toml(test.lead(10))}",
        f"normal_device_days = {_toml(test.normal_days)}",
        f"normal_false_warnings = {test.normal_warnings}",
        f"false_warnings_per_device_day = {_toml(test.false_rate)}",
        f"defaults_device_days = {_toml(defaults.normal_days)}  # normal days at default settings",
        f"defaults_false_warnings = {defaults.normal_warnings}",
        f"episodes = {counts['episodes']}",
        f"train_rows = {counts['train_rows']}",
        f"train_positive_rows = {counts['train_positive']}",
    ]
    for c in CHANNELS:
        lines += [
            "",
            "[[channels]]",
            f"name = {_toml(c.name)}",
            f"profile = {_toml(c.profile)}",
            f"metric = {_toml(c.metric)}",
            f"rule = {_toml(c.rule)}",
            f'limit = "attr:{c.limit_attr}[{c.limit_default:g}]"',
            f"direction = {_toml(c.direction)}",
            f"scale = {_toml(float(c.scale))}{'  # times the limit' if c.relative else ''}",
        ]
    return "\n".join(lines) + "\n"


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _per_day(n: int, days: float) -> str:
    return f"{n / days:.3f}" if days else "-"


def card_text(
    policy: Policy,
    val: Figures,
    test: Figures,
    defaults: Figures,
    seed: int,
    counts: dict[str, Any],
    command: str,
) -> str:
    kinds = "\n".join(
        _row(
            k,
            len(v),
            f"{sum(x > 0 for x in v)}/{len(v)}",
            f"{np.median(v):.0f}",
            f"{np.percentile(v, 10):.0f}",
        )
        for k, v in sorted(test.by_kind.items())
    )
    normal = "\n".join(
        _row(p, f"{d:.0f}", n, _per_day(n, d), defaults.normal_by_profile.get(p, (0, 0.0))[0])
        for p, (n, d) in sorted(test.normal_by_profile.items())
    )
    plan_rows = "\n".join(_row(p, ", ".join(f"{k} {n}" for k, n in ks.items())) for p, ks in PLAN.items())
    features = "\n".join(f"- `{name}`: {FEATURE_HELP[name]}" for name in FEATURES)
    watched = "\n".join(
        f"- {c.profile} `{c.metric}` {c.direction} `attr:{c.limit_attr}` [{c.limit_default:g}]: `{c.rule}`"
        for c in CHANNELS
    )
    misses = ", ".join(f"`{m}`" for m in test.misses) or "none"
    return f"""# early-warning: device risk model (`DEVICE_RISK_WARNING`)

**What it is.** A small gradient-boosted tree model (scikit-learn `GradientBoostingClassifier`,
{TREES} trees of depth {DEPTH}, exported to ONNX with skl2onnx: `{NAME}.onnx`, manifest
`{NAME}.toml`) that reads the last {WINDOW_MIN} minutes of one watched metric of a device and
estimates the probability that the metric's limit rule of `docs/devices.md` fires within the next
**{HORIZON_MIN} minutes**. `detectors/early_warning.py` scores each freezer, chiller, boiler and
pressure vessel at most once a minute of event time, takes the highest risk of the device's metrics,
and raises `DEVICE_RISK_WARNING` (severity info) at the operating point below.

Watched metrics (one row each) and the rule each forecasts:

{watched}

**Data: simulated only.** Every row comes from the device simulators in `simulators/devices/`. No
real device has ever been seen by this model, and the figures below are measured on more simulated
episodes, not on real equipment. It is a working placeholder that exercises the whole path (features,
ONNX, warnings, alerts) until recordings of real devices, with real failures, exist to retrain it on.

Episodes (seed {seed}; {counts["episodes"]} in all, {counts["device_days"]:.0f} device-days), each one
device:

| profile | kind: episodes |
|---|---|
{plan_rows}

- `normal`: 24 h from a random time of day, the device's options drawn at random (setpoint,
  differential, kitchen temperature, door openings per hour, defrosts per day; boiler working
  pressure and water level; vessel rating and compressor cut-in/out), `duration_s` among 600-1800 s.
  Door openings, defrost cycles and daily load cycles are the false-alarm traps.
- Faults follow 0.5-6 h of normal operation and are followed by an hour of recovery; their strength
  is drawn at random (a boiler pressure ramp of 5-40 min to 1.3-1.6 MPa, a water level falling 2-10
  mm/min, a vessel creeping 0.01-0.1 MPa/min, a door left open 4-45 min, ...).
- Traps whose rule never fires: `hover` (a thermostat hunting around -18 °C), `creep_under_rating`
  (a boiler pressure climbing to 1.1-1.2 MPa, under its 1.25 MPa rating), `short_creep` (a vessel's
  unloader stuck 3-10 minutes), and the shorter `door_left_open` faults.

**Labels.** The rule engine (`detectors.rules` with the shipped profiles) runs on the same messages: a
row is positive when its metric's rule raises within {HORIZON_MIN} minutes after it. Rows while the
rule is already active, and positive rows before the fault began (nothing to see yet), are left out.
Split by whole episodes, seeded, per profile and kind: 60 % train ({counts["train_rows"]} rows, of
normal days every {NORMAL_STRIDE}nd minute; {counts["train_positive"]} positive), 20 % validation
(the operating point), 20 % test (the figures below).

**Features** (`detectors.early_warning.FEATURES`: one function, `window_features`, reached through
`DeviceTrack` by both the training script and the runtime scorer). The margin is the distance to the
limit on the safe side divided by a per-metric span (4 °C for a freezer, 4.5 °C for a chiller, 20 % of
the rating for a boiler's pressure, 70 mm of water, 10 °C of boiler temperature, 37.5 % of a vessel's
rating): about 1 in normal operation, 0 at the limit. One reading per minute (the latest of the
minute); readings outside the valid range are ignored.

{features}

**Operating point.** A device's risk at or above **threshold {policy.threshold:g}** for
**{policy.confirm_min} consecutive score(s)** (one a minute) raises the warning; it clears once the risk
has stayed under {policy.clear_below:g} for {policy.clear_after_min} consecutive minutes, and no new warning
is raised on the device within {policy.cooldown_min} minutes of a clear: one drift, one warning.
Chosen on the validation episodes: for one and two confirming scores, the lowest threshold keeping
false warnings on normal days at or under {VALIDATION_TARGET} per device-day (a quarter of the budget
of {FALSE_WARNING_BUDGET}, the rest headroom for days it has not seen); of the two, the one warning more
faults before their rule, then earlier. Validation: {val.normal_warnings} false warnings in
{val.normal_days:.0f} device-days ({val.false_rate:.3f} per device-day),
{val.warned_before}/{val.faults} faults warned before the rule, median {val.lead(50):.0f} min ahead.

## Measured on held-out episodes (never seen in training nor in choosing the threshold)

Command: `{command}` (about 6 minutes on 2 cores; needs the `train` extra).

- Faults whose rule fired: **{test.faults}**, warned before the rule fired:
  **{test.warned_before}/{test.faults} ({100 * test.warned_share:.0f} %)**.
- Minutes of warning before the rule fires (a miss counted as 0):
  **median {test.lead(50):.0f}, p10 {test.lead(10):.0f}** (p90 {test.lead(90):.0f}).
- False warnings on normal operation: **{test.normal_warnings} in {test.normal_days:.0f} device-days =
  {test.false_rate:.3f} per device-day** (budget {FALSE_WARNING_BUDGET}). Before the faults, a further
  {test.lead_in_days:.1f} device-days of normal operation: {test.lead_in_warnings}. At the default settings
  of the simulators and profiles ({defaults.normal_days:.0f} more device-days, {DEFAULT_DAYS} per profile):
  **{defaults.normal_warnings} ({defaults.false_rate:.3f} per device-day)**.
- Traps (the rule never fired): {test.trap_warnings} warnings in {test.traps} episodes. Drift faults too
  short for the rule to fire: {test.faults_unfired}. Faults not warned before the rule: {misses}.
- A warning on a normal day that the rule then confirmed within {HORIZON_MIN} min is not counted as
  false (normal days on which a rule fired: {test.normal_fired} in the test set).

| fault | fired | warned before | median lead (min) | p10 lead (min) |
|---|---|---|---|---|
{kinds}

| profile | normal device-days | false warnings | per device-day | at defaults ({DEFAULT_DAYS} days) |
|---|---|---|---|---|
{normal}

## Known blind spots

- Simulated data only: real sensors drift, stick, lose samples and fail in ways the simulators do not;
  the figures test the plumbing and the method, not the model's worth on real equipment.
- Not watched: a chiller's lower limit (too cold, `min_temp_c`) and humidity (no simulated fault
  drives them), the door-left-open timer, elevators, gas detectors and filling stations.
- Abrupt faults give little or no warning: a boiler pressure ramp of a few minutes, an
  over-temperature step (p10 of the lead is a few minutes); the warning then comes with the rule or
  just before it.
- A freezer's defrost peak close to its limit looks like the start of a compressor failure for the
  first minutes; a freezer set close to its limit (setpoint within about 3.5 °C, a wide differential,
  frequent defrosts, a busy door) will see more false warnings than the figures above.
- A warning needs {MIN_POINTS} minutes of history per metric: nothing in the first minutes after a
  device, or a detector after a rebalance beyond its replay window, starts.
- The margin spans are fixed per metric, so a device run much closer to its limit than the simulated
  ones starts near the threshold.
- A warning stays active while the device is silent; it clears only on low scores.
"""


# --- the command --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=7, help="seeds the episodes, the split and the model")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="directory")
    parser.add_argument("--jobs", type=int, default=2, help="simulation processes")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        import skl2onnx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("training needs the train extra: pip install -e '.[train]' (scikit-learn, skl2onnx)")

    episodes = plan(args.seed)
    parts = split(episodes, args.seed)
    parts["defaults"] = plan_defaults(args.seed)
    sims = {name: simulate_all(eps, args.jobs, f"simulating {name}") for name, eps in parts.items()}
    x, y = training_arrays(sims["train"])
    print(
        f"training on {x.shape[0]} rows ({int(y.sum())} positive) from {len(sims['train'])} episodes",
        file=sys.stderr,
    )
    model = fit(x, y, args.seed)
    onnx_bytes = export(model, args.seed)

    policy, val = choose_policy(sims["validation"], device_risks(onnx_bytes, sims["validation"]))
    test = evaluate(sims["test"], device_risks(onnx_bytes, sims["test"]), policy)
    defaults = evaluate(sims["defaults"], device_risks(onnx_bytes, sims["defaults"]), policy)

    counts = {
        "episodes": len(episodes),
        "device_days": sum(s.minutes for part in sims.values() for s in part) / 1440,
        "train_rows": int(x.shape[0]),
        "train_positive": int(y.sum()),
    }
    command = "python -m models.train_early_warning" + (f" --seed {args.seed}" if args.seed != 7 else "")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.onnx").write_bytes(onnx_bytes)
    (out / f"{NAME}.toml").write_text(
        manifest_text(policy, test, defaults, args.seed, counts), encoding="utf-8"
    )
    (out / f"{NAME}.md").write_text(
        card_text(policy, val, test, defaults, args.seed, counts, command), encoding="utf-8"
    )

    digest = hashlib.sha256(onnx_bytes).hexdigest()[:16]
    summary = [
        f"early-warning model: {len(onnx_bytes) / 1024:.0f} KiB, sha256 {digest}, seed {args.seed}",
        f"  episodes        {len(episodes)} ({counts['device_days']:.0f} device-days, simulated only)",
        f"  train rows      {counts['train_rows']} ({counts['train_positive']} positive)",
        f"  operating point threshold {policy.threshold:g}, {policy.confirm_min} consecutive min to raise",
        f"  validation      {val.normal_warnings} false warnings in {val.normal_days:.0f} device-days, "
        f"{val.warned_before}/{val.faults} faults warned before the rule",
        "  test (held out):",
        f"    faults        {test.warned_before}/{test.faults} warned before the rule "
        f"({100 * test.warned_share:.0f} %)",
        f"    warning lead  median {test.lead(50):.0f} min, p10 {test.lead(10):.0f} min before the rule",
        f"    false alarms  {test.normal_warnings} in {test.normal_days:.0f} normal device-days "
        f"= {test.false_rate:.3f} per device-day",
        f"    traps         {test.trap_warnings} warnings in {test.traps} episodes whose rule never fired",
        f"  defaults        {defaults.normal_warnings} false warnings in {defaults.normal_days:.0f} normal "
        "device-days at default settings",
        f"  wrote           {out / NAME}.onnx, .toml, .md ({time.monotonic() - started:.0f} s)",
    ]
    print("\n".join(summary))


if __name__ == "__main__":
    main()
