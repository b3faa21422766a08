"""Every bundled scenario, replayed through the real pipeline, raises exactly its golden alerts.

For each `simulators/scenarios/<name>.yaml`: the scenario is rendered into a recording, its devices
are registered, and the recording is replayed as fast as the broker takes it into the embedded
MQTT broker → ingest (`MqttKafkaBridge`) → Kafka → `TelemetryDetector` → Kafka → `AlertService` →
PostgreSQL. Once every message has been judged and every violation stored, the scenario's alerts
— (code, source device, severity) — must be exactly those of `tests/golden/<name>.json`.
`normal-operation` must raise none.

Timestamps are event time, so the high replay speed judges the same as real time would (the
heartbeat rule aside, which runs on arrival time and which no golden relies on).

The golden files were written from a run and each alert checked by hand against
`docs/devices.md` (their `why` says how). To rewrite them after a deliberate change, run with
VIGIL_UPDATE_GOLDENS=1, then check every alert by hand again before keeping the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.service import AlertService
from detectors.telemetry import TelemetryDetector
from ingest.bridge import MqttKafkaBridge
from simulators.record import replay_file
from simulators.scenario import REGISTRY_SETTLE_S, Scenario, bundled, load, register, render_to
from vigil.db import make_pool
from vigil.settings import Settings
from vigil.topics import TELEMETRY, VIOLATIONS

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("VIGIL_UPDATE_GOLDENS") == "1"
SCENARIOS = bundled()

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

Alert = tuple[str, str, str]  # code, source (the scenario's device id), severity


@dataclass
class Pipeline:
    settings: Settings
    pool: Any
    bridge: MqttKafkaBridge
    detector: TelemetryDetector


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(settings: Settings) -> AsyncIterator[Pipeline]:
    """The spine once for all scenarios: each runs under its own ids, so they never meet."""
    assert settings.database_url
    async with contextlib.AsyncExitStack() as stack:
        pool = make_pool(settings.database_url, max_size=4)
        await pool.open(wait=True)
        stack.push_async_callback(pool.close)
        await stack.enter_async_context(AlertService(settings))
        detector = await stack.enter_async_context(TelemetryDetector(settings))
        bridge = await stack.enter_async_context(MqttKafkaBridge(settings))
        yield Pipeline(settings, pool, bridge, detector)


async def _committed_up_to_end(bootstrap: str, group: str, topic: str, timeout_s: float = 60.0) -> None:
    """Wait until consumer group `group` has committed every record now on `topic`. (The probe
    only reads the group's offsets; it never joins the group.)"""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or ())]
        ends = await probe.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while True:
            behind = {}
            for tp, end in ends.items():
                done = await probe.committed(tp) or 0
                if end > done:
                    behind[tp.partition] = end - done
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} still behind on {topic} after {timeout_s:g}s: {behind}")
            await asyncio.sleep(0.1)
    finally:
        await probe.stop()


async def _settle(p: Pipeline, received_before: int, sent: int, timeout_s: float = 60.0) -> None:
    """Wait until ingest judged every message sent, the detector every record ingest wrote, and
    the alert service every violation the detector wrote, in that order."""
    deadline = time.monotonic() + timeout_s
    while p.bridge.stats.received - received_before < sent:
        if time.monotonic() > deadline:
            got = p.bridge.stats.received - received_before
            raise AssertionError(f"ingest received {got} of {sent} messages in {timeout_s:g}s")
        await asyncio.sleep(0.05)
    bootstrap = p.settings.kafka_bootstrap
    assert bootstrap
    await _committed_up_to_end(bootstrap, TelemetryDetector.group_id, TELEMETRY)
    await _committed_up_to_end(bootstrap, AlertService.group_id, VIOLATIONS)


async def _alerts(p: Pipeline, scenario: Scenario, suffix: str) -> set[Alert]:
    async with p.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT code, source_id, severity FROM alerts WHERE enterprise_id = ANY(%s)",
            (list(scenario.enterprises),),
        )
        rows = await cur.fetchall()
    return {(code, source.removesuffix(f"-{suffix}"), severity) for code, source, severity in rows}


def _golden(name: str) -> tuple[set[Alert], dict[Alert, str]]:
    doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    alerts = {(a["code"], a["source"], a["severity"]): a.get("why", "") for a in doc["alerts"]}
    return set(alerts), alerts


def _write_golden(scenario: Scenario, got: set[Alert]) -> None:
    path = GOLDEN / f"{scenario.name}.json"
    old: dict[Alert, str] = _golden(scenario.name)[1] if path.exists() else {}
    doc = {
        "scenario": scenario.name,
        "description": scenario.description,
        "alerts": [
            {"code": c, "source": s, "severity": v, "why": old.get((c, s, v), "UNCHECKED: check by hand")}
            for c, s, v in sorted(got)
        ],
    }
    GOLDEN.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario_raises_exactly_its_golden_alerts(
    path: Path, pipeline: Pipeline, uid: str, tmp_path: Path
) -> None:
    scenario = load(path).with_suffix(uid)
    await register(scenario, pipeline.pool)
    recording = tmp_path / f"{scenario.name}.jsonl"
    sent = render_to(scenario, recording)
    await asyncio.sleep(REGISTRY_SETTLE_S)  # ingest and the detector then know the new devices

    received_before = pipeline.bridge.stats.received
    refused_before = sum(pipeline.bridge.stats.dead_lettered.values())
    stats = await replay_file(recording, pipeline.settings.mqtt_url or "", speed=math.inf)
    assert stats.sent == sent
    await _settle(pipeline, received_before, sent)
    refused = sum(pipeline.bridge.stats.dead_lettered.values()) - refused_before
    assert refused == 0, f"ingest refused {refused} messages: {dict(pipeline.bridge.stats.dead_lettered)}"

    got = await _alerts(pipeline, scenario, uid)
    if UPDATE:
        _write_golden(scenario, got)
    expected, why = _golden(scenario.name)
    if scenario.name == "normal-operation":
        assert not expected, "a day of normal operation must raise nothing"
    missing = "\n".join(f"  {a}: {why[a]}" for a in sorted(expected - got))
    extra = "\n".join(f"  {a}" for a in sorted(got - expected))
    assert got == expected, (
        f"{scenario.name}: alerts differ from the golden file\nmissing:\n{missing}\nunexpected:\n{extra}"
    )
