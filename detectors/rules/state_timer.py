"""`state_timer` rules: `start_event` without `stop_event` for `for_s` (a door left open, a
passenger trapped); cleared on `stop_event`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.rules.profiles import StateTimerSpec
from detectors.rules.rule import Resolver, Rule, duration, to_ms
from detectors.rules.state import DeviceState, RuleState
from vigil.events import DeviceEvent, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


class StateTimerRule(Rule):
    __slots__ = ("for_ms", "start_event", "stop_event")

    def __init__(self, spec: StateTimerSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.start_event, self.stop_event = spec.start_event, spec.stop_event
        self.for_ms = to_ms(resolve(spec.for_s))

    def listens(self) -> tuple[str, ...]:
        return (self.start_event, self.stop_event)

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if msg.event == self.start_event:
            if st.since is None:  # a repeated start while already started changes nothing
                st.since = ts
                if self.for_ms == 0:
                    self.fire(engine, dev, st, ts)
                else:
                    engine.schedule(dev, ts + self.for_ms)
            return
        if st.raised is not None and st.since is not None:
            summary = f"{self.name_en} ended: {self.stop_event} after {duration(ts - st.since)}"
            self.report(engine, dev, st, "cleared", ts, summary, self._evidence(st))
        st.since, st.raised = None, None

    def due(self, st: RuleState) -> int | None:
        return st.since + self.for_ms if st.since is not None and st.raised is None else None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.since is not None
        st.raised = violation_id("device", dev.device_id, self.code, st.since)
        st.raised_at, st.severity = at, self.severity
        lasted = duration(at - st.since)
        summary = f"{self.name_en}: {self.start_event} without {self.stop_event} for {lasted}"
        evidence = self._evidence(st)
        # The figures of the summary people read (vigil.summaries).
        evidence["params"] = {
            "event": self.start_event,
            "held_s": (at - st.since) / 1000,
            "allowed_s": self.for_ms / 1000,
        }
        self.report(engine, dev, st, "active", at, summary, evidence)

    def _evidence(self, st: RuleState) -> dict[str, Any]:
        return {
            "rule": "state_timer",
            "start_event": self.start_event,
            "stop_event": self.stop_event,
            "since": st.since,
            "for_s": self.for_ms / 1000,
        }
