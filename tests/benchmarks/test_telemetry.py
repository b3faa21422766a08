"""`vigil bench telemetry` on a tiny run, on embedded infrastructure of its own: every figure is
there, each ratio is computed from the numbers measured in the same run, and the pipeline did what
it was given (one alert per device out of its limits). Speeds are for the benchmark, never tests."""

from __future__ import annotations

import math
from dataclasses import astuple

import pytest

from benchmarks.telemetry import TARGET_E2E, TARGET_RULES, make_devices, print_report, publish
from benchmarks.telemetry import measure as measure_bench
from vigil.settings import Settings

pytestmark = pytest.mark.integration

RAW_MQTT = "raw MQTT pass-through (publisher → broker → paho)"
RAW_CONSUME = "raw aiokafka consume (no processing)"
RULES = "rules alone (engine, this fleet)"
FIGURES = {
    RAW_MQTT: (None, None),
    "  the publisher alone (to its last PUBACK)": (None, None),
    RAW_CONSUME: (None, None),
    RULES: (None, TARGET_RULES),
    "rules alone (benchmarks.rules, mixed fleet)": (None, TARGET_RULES),
    "decode + registry + rules": (RULES, None),
    "detector service (Kafka → rules → commit)": (RAW_CONSUME, None),
    "ingest (MQTT → Kafka), in the e2e run": (RAW_MQTT, None),
    "MQTT → alert, end to end": (RAW_MQTT, TARGET_E2E),
}


async def test_a_small_run_reports_every_figure_against_the_limits_it_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 7 s of real-time stream: every out-of-limits device goes through at least one 6 s cycle.
    report = await measure_bench(Settings(mode="demo"), messages=2000, devices=100, latency_s=7)

    assert list(report.figures) == list(FIGURES)
    for name, (limit_of, target) in FIGURES.items():
        figure = report.figures[name]
        assert math.isfinite(figure.rate) and figure.rate > 0, name
        assert figure.target == target, name
        if limit_of is None:
            assert figure.limit is None and figure.ratio is None, name
        else:  # the raw limit is the figure measured in this same run, and the ratio is against it
            assert figure.limit == report.figures[limit_of].rate, name
            assert figure.ratio == pytest.approx(figure.rate / report.figures[limit_of].rate), name

    e2e = report.e2e
    assert e2e.rate == report.figures["MQTT → alert, end to end"].rate
    assert e2e.alerts == report.expected_alerts == 10  # one per device out of its limits, no more
    assert e2e.latency_ms and 0 < report.latency(50) <= report.latency(95)
    assert e2e.latency_rate == pytest.approx(e2e.rate / 2)
    assert e2e.busy > 0

    print_report(report)
    out = capsys.readouterr().out
    assert all(name in out for name in FIGURES)
    assert "cores" in out and "p95" in out and "10 of 10 expected" in out
    assert out.count("PASS") + out.count("BELOW") == 2 * 3  # three targeted rows, and the summary


def test_the_publisher_speaks_mqtt_to_a_real_broker(settings: Settings) -> None:
    """The socket publisher's packets are MQTT 3.1.1 a broker accepts: every QoS 1 PUBACK comes."""
    assert settings.mqtt_url
    devices = [astuple(d) for d in make_devices(3, "pub")]
    result = publish(
        {"url": settings.mqtt_url, "devices": devices, "range": (0, 300, 0.0, 1_763_000_000_000)}
    )
    assert result["acked"] == 300 and result["end"] >= result["start"] > 0
