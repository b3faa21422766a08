"""The model card, `models/early-warning.md`, written from one training run's figures.

What the model is, its data, features and operating point, the figures measured on held-out
episodes, and its known blind spots: everything a reader needs before trusting its warnings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.early_warning import CHANNELS, FEATURES, MIN_POINTS, WINDOW_MIN, Policy
from detectors.early_warning.features import FEATURE_HELP
from models.early_warning.episodes import DEFAULT_DAYS, PLAN
from models.early_warning.evaluate import FALSE_WARNING_BUDGET, VALIDATION_TARGET, Figures
from models.early_warning.export import NAME
from models.early_warning.fit import DEPTH, NORMAL_STRIDE, TREES
from models.early_warning.simulation import HORIZON_MIN


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
**{HORIZON_MIN} minutes**. `detectors/early_warning/` scores each freezer, chiller, boiler and
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
