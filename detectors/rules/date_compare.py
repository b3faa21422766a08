"""`date_compare` rules: an `event` whose `data[field]` date is before (`op = "<"`) the event's
site-local date; one violation per `data[key]` and day, never cleared (a point violation)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from detectors.rules.profiles import DateCompareSpec
from detectors.rules.rule import Resolver, Rule
from detectors.rules.state import DeviceState, RuleState
from vigil.events import DeviceEvent, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


class DateCompareRule(Rule):
    """Point violations: `active` only (the filling happened; nothing clears it)."""

    __slots__ = ("event", "field", "key", "op")
    # A point violation from one event, its id fixed by device, key and day: a late filling is
    # judged as it would have been in order, and judging it twice is absorbed by the alert store.
    ORDER_FREE = True

    def __init__(self, spec: DateCompareSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.field, self.key, self.op = spec.event, spec.field, spec.key, spec.op

    def listens(self) -> tuple[str, ...]:
        return (self.event,)

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        raw = msg.data.get(self.field)
        try:
            if not isinstance(raw, str) or len(raw) != 10:
                raise ValueError(raw)
            due = date.fromisoformat(raw)
        except ValueError:
            engine.stats.bad_event_data += 1
            return
        today, day_start = dev.program.local_day(msg.ts)
        if not (due < today if self.op == "<" else due <= today):
            return
        key_raw = msg.data.get(self.key) if self.key is not None else None
        key = str(key_raw) if isinstance(key_raw, str | int) and not isinstance(key_raw, bool) else "?"
        if st.day != day_start:
            st.day, st.seen = day_start, []
        seen = st.seen if st.seen is not None else []
        if key in seen:
            return  # one violation per key and day
        seen.append(key)
        st.seen = seen
        # The id names the key too: two overdue cylinders filled the same day are two violations
        # (the alert store groups them into the device's one open alert of this code).
        vid = violation_id("device", dev.device_id, f"{self.code}/{key}", day_start)
        label = f" {self.key} {key}" if self.key is not None else ""
        summary = f"{self.name_en}:{label} {self.field} {due}, {self.event} on {today}"
        evidence = {
            "rule": "date_compare",
            "event": self.event,
            "data": msg.data,
            "date": today.isoformat(),
            # The figures of the summary people read (vigil.summaries); dates are site-local days.
            "params": {"key": key, "due": due.isoformat(), "date": today.isoformat()},
        }
        engine.emit(dev, self.code, vid, "active", msg.ts, msg.ts, self.severity, summary, evidence)
