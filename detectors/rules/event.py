"""`event` rules: raised by `event`; cleared `quiet_s` after the last one and/or on `clear_event`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.rules.profiles import EventSpec
from detectors.rules.rule import Resolver, Rule, duration, to_ms
from detectors.rules.state import DeviceState, RuleState
from vigil.events import DeviceEvent, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


class EventRule(Rule):
    __slots__ = ("clear_event", "event", "quiet_ms")

    def __init__(self, spec: EventSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.clear_event = spec.event, spec.clear_event
        self.quiet_ms = to_ms(resolve(spec.quiet_s)) if spec.quiet_s is not None else None

    def listens(self) -> tuple[str, ...]:
        return (self.event,) if self.clear_event is None else (self.event, self.clear_event)

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if msg.event == self.clear_event:
            if st.raised is not None:
                self._clear(engine, dev, st, ts, f"{self.name_en} ended: {msg.event}")
            return
        if st.raised is None:
            st.since = st.raised_at = ts
            st.raised = violation_id("device", dev.device_id, self.code, ts)
            st.severity = self.severity
            # `params`: the figures of the summary people read (vigil.summaries).
            evidence = {"rule": "event", "event": msg.event, "data": msg.data, "params": {"event": msg.event}}
            self.report(engine, dev, st, "active", ts, f"{self.name_en}: {msg.event}", evidence)
        st.last = ts
        if self.quiet_ms is not None:
            engine.schedule(dev, ts + self.quiet_ms)

    def due(self, st: RuleState) -> int | None:
        if st.raised is None or self.quiet_ms is None:
            return None
        return st.last + self.quiet_ms

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert self.quiet_ms is not None
        quiet = duration(self.quiet_ms)
        self._clear(engine, dev, st, at, f"{self.name_en} ended: no {self.event} for {quiet}")

    def _clear(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int, summary: str) -> None:
        assert st.raised is not None and st.since is not None
        evidence = {"rule": "event", "event": self.event, "first": st.since, "last": st.last}
        self.report(engine, dev, st, "cleared", at, summary, evidence)
        st.raised, st.since = None, None
