"""`event_count` rules: `count` events named `event` within `window_s`; cleared after `quiet_s`
(default `window_s`) without one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.rules.profiles import EventCountSpec
from detectors.rules.rule import Resolver, Rule, duration, to_ms
from detectors.rules.state import DeviceState, RuleState
from vigil.events import DeviceEvent, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


class EventCountRule(Rule):
    __slots__ = ("count", "event", "quiet_ms", "window_ms")

    def __init__(self, spec: EventCountSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.count = spec.event, spec.count
        self.window_ms, self.quiet_ms = to_ms(resolve(spec.window_s)), to_ms(resolve(spec.quiet_s))

    def listens(self) -> tuple[str, ...]:
        return (self.event,)

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if st.raised is not None:
            st.last = ts
            engine.schedule(dev, ts + self.quiet_ms)
            return
        times = st.times if st.times is not None else []
        times.append(ts)
        while times and times[0] < ts - self.window_ms:
            times.pop(0)
        if len(times) > self.count:
            del times[: len(times) - self.count]
        st.times = times
        if len(times) >= self.count:
            st.since, st.last = times[0], ts
            st.raised = violation_id("device", dev.device_id, self.code, st.since)
            st.raised_at, st.severity, st.times = ts, self.severity, None
            summary = (
                f"{self.name_en}: {self.count} {self.event} events within {duration(ts - st.since)}"
                f" (limit {self.count - 1} in {duration(self.window_ms)})"
            )
            evidence = self._evidence(st)
            # The figures of the summary people read (vigil.summaries).
            evidence["params"] = {
                "event": self.event,
                "count": self.count,
                "within_s": (ts - st.since) / 1000,
                "window_s": self.window_ms / 1000,
            }
            self.report(engine, dev, st, "active", ts, summary, evidence)
            engine.schedule(dev, ts + self.quiet_ms)

    def due(self, st: RuleState) -> int | None:
        return st.last + self.quiet_ms if st.raised is not None else None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.raised is not None and st.since is not None
        summary = f"{self.name_en} ended: no {self.event} for {duration(self.quiet_ms)}"
        self.report(engine, dev, st, "cleared", at, summary, self._evidence(st))
        st.raised, st.since, st.times = None, None, None

    def _evidence(self, st: RuleState) -> dict[str, Any]:
        return {
            "rule": "event_count",
            "event": self.event,
            "count": self.count,
            "window_s": self.window_ms / 1000,
            "first": st.since,
            "last": st.last,
        }
