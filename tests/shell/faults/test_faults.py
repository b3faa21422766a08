"""The fault suite, CI-sized: real service processes on real brokers and database; kill -9 of the
telemetry detector and of the alerts service, a database outage, an MQTT broker restart, Kafka
unreachable, the Kafka broker killed and restarted on its S3 storage, and a 10x burst. Each must
lose nothing and repeat nothing.

One suite run (about three minutes on two cores) feeds every test below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shell.faults import FaultResult, format_table, run_faults_async
from shell.faults.overload import FACTOR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

FAULTS = (
    "kill -9 detector-telemetry",
    "kill -9 alerts",
    "database outage",
    "MQTT broker restart",
    "Kafka unreachable",
    "Kafka broker restart",
)
# Bound on the growth of all service processes' RSS during the burst: the bounded queues (ingest's
# 10,000 messages of well under 1 KiB, the consumers' 1 MiB per partition prefetch) allow tens of
# MiB; unbounded buffering of a 10x burst would show as far more.
RSS_GROWTH_LIMIT_MIB = 150.0


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, FaultResult]]:
    rows = asyncio.run(run_faults_async(quick=True, faults=FAULTS, overload=True))
    print("\n" + format_table(rows))  # shown with -s, and in the report of a failure
    yield {row.fault: row for row in rows}


@pytest.mark.parametrize("fault", FAULTS)
def test_no_alert_lost_or_duplicated_and_every_notice_delivered(
    results: dict[str, FaultResult], fault: str
) -> None:
    r = results[fault]
    assert r.in_flight > 0, "the site was streaming while the fault lasted"
    assert r.alerts_expected > 0 and r.alerts_found == r.alerts_expected, f"alerts lost: {r}"
    assert r.alerts_duplicated == 0 and r.alerts_unexpected == 0, f"alerts repeated or invented: {r}"
    assert r.notices_delivered == r.notices_expected and r.notices_duplicated == 0, f"notices: {r}"
    assert r.telemetry_sent > 0 and r.telemetry_lost == 0, f"readings lost: {r}"
    assert r.recovery_s is not None, f"not caught up: {r}"


def test_a_10x_burst_is_absorbed_with_bounded_memory_and_no_reading_lost(
    results: dict[str, FaultResult],
) -> None:
    r = results[f"overload {FACTOR}x"]
    assert r.overload is not None
    o = r.overload
    assert r.in_flight > 0 and r.telemetry_lost == 0, f"telemetry is pushed back on, never shed: {r}"
    assert r.alerts_found == r.alerts_expected and r.alerts_duplicated == 0 and r.alerts_unexpected == 0
    assert r.notices_delivered == r.notices_expected
    assert o.rss_before_mib > 0 and o.rss_peak_mib >= o.rss_before_mib
    assert o.rss_peak_mib - o.rss_before_mib < RSS_GROWTH_LIMIT_MIB, f"memory grew without bound: {o}"
    # Every frame camera ingest judged is accounted for: sent, gated as unchanged, or shed and counted.
    assert o.frames_pushed > 0 and o.frames_sent > 0 and 0 < o.frames_analysed <= o.frames_pushed
    assert o.frames_sent + o.frames_gated + o.frames_shed == o.frames_analysed, f"frames unaccounted: {o}"
    assert r.ok
