"""`vigil bench telemetry`: the telemetry path against the raw limits of its parts, in one run.

Rules alone (the engine fed and ticked as the detector does; then with decoding and the registry);
raw MQTT (a publisher process → broker → a plain paho subscriber); raw Kafka (a plain consumer,
then the real `TelemetryDetector`, over the same records of a fresh topic); MQTT → alert with
`vigil run alerts | detector-telemetry | ingest` as separate processes, as deployed: N readings
published as fast as the broker takes them, one device in ten out of its limits (`duration_s` 0:
raised at once), timed until every reading is judged and every violation applied (the groups'
committed offsets); then a real-time stream at half that rate for the latency from a reading's
publish (its `ts`, the violation's `detected_at`) to its alert row (`applied_at`).

This module measures the whole (`measure`), reports it beside the raw limits and the design's
targets, and is the CLI's entry (`run_telemetry_bench`); the fleet and its publisher are in
`benchmarks.telemetry_fleet`, the stages in `benchmarks.telemetry_stages`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.telemetry_fleet import ATTRIBUTES, make_devices, publish, readings
from benchmarks.telemetry_stages import (
    E2E,
    busy_seconds,
    measure_e2e,
    measure_kafka,
    measure_raw_mqtt,
    measure_rules,
)
from vigil.registry import Device
from vigil.settings import Settings

__all__ = [  # with what other modules import from here
    "ATTRIBUTES",
    "E2E",
    "TARGET_E2E",
    "TARGET_RULES",
    "Figure",
    "TelemetryReport",
    "busy_seconds",
    "make_devices",
    "measure",
    "print_report",
    "publish",
    "readings",
    "run_telemetry_bench",
]

TARGET_E2E, TARGET_RULES = 10_000.0, 50_000.0  # msg/s, the design's targets


@dataclass(frozen=True, slots=True)
class Figure:
    rate: float  # msg/s
    limit: float | None = None  # the raw limit it is compared with, measured in the same run
    limit_name: str = ""
    target: float | None = None  # the design's target, msg/s

    @property
    def ratio(self) -> float | None:
        return self.rate / self.limit if self.limit else None


@dataclass(frozen=True, slots=True)
class TelemetryReport:
    figures: dict[str, Figure]
    e2e: E2E
    expected_alerts: int
    header: str

    def latency(self, q: float) -> float:
        ordered = self.e2e.latency_ms
        return ordered[round(q / 100 * (len(ordered) - 1))] if ordered else float("nan")


async def measure(settings: Settings, *, messages: int, devices: int, latency_s: float) -> TelemetryReport:
    from shell.infra import Infrastructure
    from vigil.db import make_pool, migrate
    from vigil.kafka import ensure_topics
    from vigil.registry import register_device

    tag = uuid.uuid4().hex[:6]
    fleet = make_devices(max(2, min(devices, messages // 2)), tag)  # each device reads twice at least
    rules, decode_rules, mixed = await asyncio.to_thread(measure_rules, fleet, messages)
    infra = Infrastructure(settings.model_copy(update={"mode": "demo"}))
    s = await asyncio.to_thread(infra.start)
    try:
        assert s.database_url and s.kafka_bootstrap and s.mqtt_url
        await migrate(s.database_url)
        await ensure_topics(s.kafka_bootstrap)
        async with make_pool(s.database_url, name="bench-register") as pool:
            probe = Device(f"bench-{tag}-probe", fleet[0].enterprise_id, fleet[0].site_id, "freezer", {})
            for d in [*fleet, probe]:
                ids = {"enterprise_id": d.enterprise_id, "site_id": d.site_id, "device_id": d.device_id}
                await register_device(pool, **ids, profile=d.profile, attributes=ATTRIBUTES)
        raw_mqtt, publish_rate = await measure_raw_mqtt(s.mqtt_url, fleet, messages)
        raw_consume, detector = await measure_kafka(s, fleet, messages, tag)
        e2e = await measure_e2e(s, fleet, messages, latency_s, infra.workdir)
        mqtt = "mosquitto" if (infra.workdir / "mosquitto.conf").exists() else "amqtt"
    finally:
        await asyncio.to_thread(infra.stop)
    kinds = {"mqtt": f"MQTT {mqtt}", "kafka": "Kafka Tansu (in memory)", "postgres": "PostgreSQL embedded"}
    brokers = ", ".join(v if k in infra.embedded else f"{v.split()[0]} configured" for k, v in kinds.items())
    cpuinfo = await asyncio.to_thread(Path("/proc/cpuinfo").read_text)
    cpu = next((ln.split(":")[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")), "")
    header = (f"vigil bench telemetry — {messages:,} readings per stage from {len(fleet)} devices "
              f"({len(fleet[::10])} out of limits); rules: detectors.rules.RuleEngine\n  {cpu}, "
              f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), Python "
              f"{platform.python_version()}; {brokers}; services as separate processes")  # fmt: skip
    figures = {
        "raw MQTT pass-through (publisher → broker → paho)": Figure(raw_mqtt),
        "  the publisher alone (to its last PUBACK)": Figure(publish_rate),
        "raw aiokafka consume (no processing)": Figure(raw_consume),
        "rules alone (engine, this fleet)": Figure(rules, target=TARGET_RULES),
        "rules alone (benchmarks.rules, mixed fleet)": Figure(mixed, target=TARGET_RULES),
        "decode + registry + rules": Figure(decode_rules, rules, "rules alone"),
        "detector service (Kafka → rules → commit)": Figure(detector, raw_consume, "raw consume"),
        "ingest (MQTT → Kafka), in the e2e run": Figure(e2e.ingest_rate, raw_mqtt, "raw MQTT"),
        "MQTT → alert, end to end": Figure(e2e.rate, raw_mqtt, "raw MQTT", TARGET_E2E),
    }
    return TelemetryReport(figures, e2e, len(fleet[::10]), header)


def print_report(r: TelemetryReport) -> None:
    width, e = max(map(len, r.figures)), r.e2e
    print(f"\n{r.header}\n  {'figure':<{width}}  {'msg/s':>9}  {'raw limit, same run':>24}  ratio   target")
    for name, f in r.figures.items():
        limit, ratio = (f"{f.limit_name} {f.limit:,.0f}", f"{f.ratio:.1%}") if f.limit else ("", "")
        verdict = (
            f"{'PASS' if f.rate >= f.target else 'BELOW'} ({f.rate / f.target:.2f}×)" if f.target else ""
        )
        target = f"≥ {f.target:,.0f}  {verdict}" if f.target else ""
        print(f"  {name:<{width}}  {f.rate:>9,.0f}  {limit:>24}  {ratio:>6}  {target}")
    print(f"  publish → alert row: p50 {r.latency(50):,.0f} ms, p95 {r.latency(95):,.0f} ms over "
          f"{len(e.latency_ms)} violations, streaming {e.latency_rate:,.0f} msg/s (e2e / 2)")  # fmt: skip
    print(f"  alerts opened by the e2e run: {e.alerts} of {r.expected_alerts} expected"
          f"{'' if e.alerts == r.expected_alerts else '  MISMATCH'}; machine busy during it: "
          f"{e.busy:.2f} of {os.cpu_count()} cores (brokers, services, publisher, all else)")  # fmt: skip
    verdicts = [f"{name} {f.rate:,.0f} msg/s: {'PASS' if f.rate >= f.target else 'BELOW'} (target "
                f"{f.target:,.0f})" for name, f in r.figures.items() if f.target]  # fmt: skip
    print("summary — " + "; ".join(verdicts))


async def run_telemetry_bench(settings: Settings, args: argparse.Namespace) -> int:
    report = await measure(settings, messages=args.messages, devices=args.devices, latency_s=args.latency_s)
    print_report(report)
    return 0
