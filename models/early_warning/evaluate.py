"""The warning policy on per-minute device risks: choosing the operating point, and the figures.

Each held-out episode's rows are scored by the exported model on onnxruntime (as deployed), reduced
to one risk per device and minute, and replayed through the runtime's own `WarnState`: the
warnings counted are those the detector would raise. The operating point is chosen on the
validation episodes; the card's figures are measured on the test episodes and the default-settings
days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from detectors.early_warning import Policy, WarnState
from detectors.early_warning.channels import MINUTE_MS
from models.early_warning.episodes import DRIFTS
from models.early_warning.simulation import HORIZON_MIN, Simulated

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
