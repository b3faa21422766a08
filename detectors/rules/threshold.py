"""`threshold` rules: a condition over the latest value of each metric that must hold for `for_s`
before it is raised, and clears when `clear` holds (the hysteresis band lies between the two).

`judge_telemetry` is the engine's hot path: every reading goes through it. It keeps the valid
values (the impossible ones go to SENSOR_OUT_OF_RANGE) and walks the device's threshold rules with
their per-reading logic written out inline rather than as a `ThresholdRule` method, since it runs
for every rule of every reading. `ThresholdRule` holds the compiled rule and what happens less
often: the raise, the timers, the escalation, the clear.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from detectors.rules.builtin import out_of_range
from detectors.rules.expr import AllOf, AnyOf, Compare, Condition, Expr, compile_condition, metrics_of, text
from detectors.rules.profiles import ThresholdSpec
from detectors.rules.rule import RANK, Resolver, Rule, duration, to_ms, unit_suffix
from detectors.rules.state import DeviceState, RuleState
from vigil.catalogue import Severity
from vigil.events import Telemetry, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


class ThresholdRule(Rule):
    __slots__ = (
        "bounds",
        "clear",
        "clear_text",
        "esc_ms",
        "esc_to",
        "for_ms",
        "limits",
        "metrics",
        "night_for_ms",
        "night_severity",
        "primary",
        "when",
        "when_text",
    )

    def __init__(self, spec: ThresholdSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.when: Condition = compile_condition(spec.when, resolve)
        self.clear: Condition = (
            compile_condition(spec.clear, resolve)
            if spec.clear is not None
            else compile_condition(spec.when, resolve, negate=True)
        )
        self.when_text = text(spec.when, resolve)
        self.clear_text = text(spec.clear, resolve) if spec.clear is not None else f"not ({self.when_text})"
        self.for_ms = to_ms(resolve(spec.for_s))
        self.night_severity: Severity | None = spec.night_severity
        self.night_for_ms = to_ms(resolve(spec.night_for_s)) if spec.night_for_s is not None else None
        self.esc_ms = to_ms(resolve(spec.escalate_after_s)) if spec.escalate_after_s is not None else None
        self.esc_to: Severity | None = spec.escalate_to
        self.metrics = metrics_of(spec.when)
        self.primary = self.metrics[0]
        self.limits = resolve.used(spec.when, spec.clear, spec.for_s)
        # The primary metric's comparisons in `when`, resolved: which limit a value crossed, for
        # the summary people read (a chiller's 0 or 8 °C).
        self.bounds = [(c.op, resolve(c.limit)) for c in _compares(spec.when) if c.metric == self.primary]

    def due(self, st: RuleState) -> int | None:
        if st.raised is None:
            if st.since is None:
                return None
            # A raise on held values waits until just after the deadline: a reading at the
            # deadline itself decides (and is the value reported), whether or not a tick came first.
            return st.since + self.for_ms + 1 if st.holding else st.last + self.for_ms
        if self.esc_ms is not None and self.esc_to is not None and RANK[st.severity] < RANK[self.esc_to]:
            return st.raised_at + self.esc_ms
        return None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        if st.raised is not None:
            self.escalate(engine, dev, st, at)
        elif st.holding:
            assert st.since is not None
            self.raise_(engine, dev, st, st.since + self.for_ms)  # it held, as last reported
        else:
            self.reset(st)  # it left the condition for the band and stayed there for_s: over

    @staticmethod
    def reset(st: RuleState) -> None:
        st.since, st.raised, st.holding = None, None, False
        st.low, st.high = math.inf, -math.inf

    def raise_(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.since is not None
        severity = self.severity
        if self.night_severity is not None and dev.program.is_night(at):
            severity = self.night_severity
        st.raised = violation_id("device", dev.device_id, self.code, st.since)
        st.raised_at, st.severity = at, severity
        night = " at night" if severity != self.severity else ""
        lasted = at - st.since
        summary = f"{self.name_en}: {self._values(dev)} ({self.when_text})" + (
            f" for {duration(lasted)}" if lasted >= 1000 else ""
        )
        self.report(engine, dev, st, "active", at, summary + night, self._evidence(dev, st, at))
        if self.esc_ms is not None and self.esc_to is not None and RANK[severity] < RANK[self.esc_to]:
            engine.schedule(dev, at + self.esc_ms)

    def escalate(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        """Still active after `escalate_after_s`: an `active` violation of the higher severity with
        its own id (the raise's id + "-" + severity). The alert store keeps one open alert per
        source and code and the worse severity of its violations, so this upgrades that alert."""
        assert st.raised is not None and st.since is not None and self.esc_to is not None
        st.severity = self.esc_to
        lasted = duration(at - st.raised_at)
        summary = f"{self.name_en}: still {self._values(dev)} after {lasted}; upgraded to {self.esc_to}"
        evidence = self._evidence(dev, st, at)
        evidence["escalated_from"] = st.raised
        self.report(engine, dev, st, "active", at, summary, evidence, vid=f"{st.raised}-{self.esc_to}")

    def clear_(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.raised is not None and st.since is not None
        summary = f"{self.name_en} ended: {self._values(dev)} after {duration(at - st.since)}"
        self.report(engine, dev, st, "cleared", at, summary, self._evidence(dev, st))
        self.reset(st)

    def _values(self, dev: DeviceState) -> str:
        units = dev.program.units
        parts = []
        for m in self.metrics:
            value = dev.values.get(m)
            shown = "?" if value is None else f"{value:g}"
            parts.append(f"{m} {shown}{unit_suffix(units.get(m, ''))}")
        return ", ".join(parts)

    def _params(self, dev: DeviceState, st: RuleState, at: int) -> dict[str, Any]:
        """The figures of the summary people read (vigil.summaries): the primary metric's value,
        the limit it crossed and on which side, and how long it has held."""
        value = dev.values.get(self.primary)
        crossed = next(
            ((op, limit) for op, limit in self.bounds if value is not None and _holds(op, value, limit)),
            self.bounds[0] if self.bounds else (None, None),
        )
        op, limit = crossed
        side = "above" if op in (">", ">=") else "below" if op in ("<", "<=") else None
        return {
            "variant": side,
            "metric": self.primary,
            "value": value,
            "limit": limit,
            "unit": dev.program.units.get(self.primary, ""),
            "held_s": (at - st.since) / 1000 if st.since is not None else None,
        }

    def _evidence(self, dev: DeviceState, st: RuleState, at: int | None = None) -> dict[str, Any]:
        evidence: dict[str, Any] = {
            "rule": "threshold",
            "condition": self.when_text,
            "clear": self.clear_text,
            "values": {m: dev.values.get(m) for m in self.metrics},
            "for_s": self.for_ms / 1000,
            "since": st.since,
            "limits": dict(self.limits),
        }
        if at is not None:
            evidence["params"] = self._params(dev, st, at)
        if st.low <= st.high:
            evidence["metric"] = self.primary
            evidence["lowest"], evidence["highest"] = st.low, st.high
        return evidence


def _compares(expr: Expr) -> list[Compare]:
    if isinstance(expr, Compare):
        return [expr]
    assert isinstance(expr, AllOf | AnyOf)
    return [c for part in expr.parts for c in _compares(part)]


def _holds(op: str, value: float, limit: float) -> bool:
    if op in (">", ">="):
        return value > limit if op == ">" else value >= limit
    if op in ("<", "<="):
        return value < limit if op == "<" else value <= limit
    return value == limit if op == "==" else value != limit


def judge_telemetry(engine: RuleEngine, dev: DeviceState, msg: Telemetry, ts: int) -> None:
    """A reading of `dev` at `ts` (device time, not late): its values, then its threshold rules."""
    if ts == dev.last_telemetry_ts:
        engine.stats.duplicates += 1
        return
    dev.last_telemetry_ts = ts
    prog = dev.program
    ranges = prog.ranges
    values = dev.values
    bad: dict[str, float] | None = None
    for name, x in msg.metrics.items():
        r = ranges.get(name)
        if r is None:
            continue  # not a metric of this profile
        if r[0] <= x <= r[1]:
            values[name] = x
        else:  # physically impossible: reported, and kept away from the other rules
            if bad is None:
                bad = {}
            bad[name] = x
    if bad is not None or dev.range_id is not None:
        out_of_range(engine, dev, msg, bad, ts)

    for rule, st in zip(prog.conds, dev.states, strict=False):  # conds come first
        try:
            if st.raised is None:
                if rule.when(values):
                    since = st.since
                    x = values[rule.primary]
                    if since is None:
                        st.since = since = ts
                        st.low = st.high = x
                    elif x < st.low:
                        st.low = x
                    elif x > st.high:
                        st.high = x
                    st.last = ts
                    lasted = ts - since
                    if lasted >= rule.for_ms or (
                        rule.night_for_ms is not None and lasted >= rule.night_for_ms and prog.is_night(ts)
                    ):
                        rule.raise_(engine, dev, st, ts)
                    elif not st.holding:
                        st.holding = True
                        engine.schedule(dev, since + rule.for_ms)
                elif st.since is not None:
                    if rule.clear(values):
                        rule.reset(st)  # not long enough: the episode ends unraised
                    elif st.holding:
                        # In the hysteresis band: the count goes on, unless this lasts for_s.
                        st.holding = False
                        engine.schedule(dev, st.last + rule.for_ms)
            elif rule.clear(values):
                rule.clear_(engine, dev, st, ts)
            else:
                x = values[rule.primary]
                if x < st.low:
                    st.low = x
                elif x > st.high:
                    st.high = x
        except KeyError:
            continue  # a metric of the rule not reported yet: nothing to judge
