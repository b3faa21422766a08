"""Rows and labels: an episode's messages through the runtime's feature path and the rule engine.

Rows: every episode's messages go through `detectors.early_warning.DeviceTrack`, exactly as the
runtime scorer feeds them, giving one row per watched metric per minute. Label: the metric's rule,
run by the real rule engine (`detectors.rules`) on the same messages, fires within the next
`HORIZON_MIN` minutes. Rows while the rule is already active, and positive rows before the fault
began (nothing to see yet), are left out of training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np

from detectors.early_warning import CHANNELS, FEATURES, DeviceTrack
from detectors.early_warning.channels import MINUTE_MS, profile_defaults
from detectors.rules import Rulebook, RuleEngine
from models.early_warning.episodes import ENTERPRISE, SITE, Episode
from simulators.devices import make_device
from vigil.events import DeviceEvent, DeviceMessage, DeviceStatus, Telemetry
from vigil.progress import Progress

HORIZON_MIN: Final = 30


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
