"""`vigil bench scale`'s verdict (benchmarks/scale.py): medians per worker count over interleaved
repetitions, judged against the noise of each count's own runs. Pure logic; the benchmark itself
needs its own brokers and minutes, and runs as `vigil bench scale`."""

from __future__ import annotations

import pytest

from benchmarks.scale import ScaleReport, ScaleRun


def _run(workers: int, cpu_s: float, rate: float = 1000.0) -> ScaleRun:
    return ScaleRun(workers, rate, join_s=5.0, busy_cores=1.0, cpu_s=cpu_s, messages=1000)


def test_medians_per_count_decide_and_the_noise_is_each_counts_own_spread() -> None:
    # Interleaved as the benchmark runs them: 1, 2, 1, 2, 1, 2. One outlier per count.
    runs = [_run(1, 0.020), _run(2, 0.021), _run(1, 0.040), _run(2, 0.022), _run(1, 0.021), _run(2, 0.030)]
    report = ScaleReport(messages=1000, devices=10, runs=runs)
    one, two = report.summary()
    assert (one.workers, two.workers) == (1, 2)
    assert one.cpu_per_1000 == pytest.approx(0.021) and two.cpu_per_1000 == pytest.approx(0.022)
    assert report.cost_spread == pytest.approx(1 / 21)  # medians: flat, whatever the outliers
    assert one.own_spread == pytest.approx((40 - 20) / 21)
    assert report.noise == pytest.approx(max((40 - 20) / 21, (30 - 21) / 22))


def test_a_count_that_costs_more_every_time_is_not_flat() -> None:
    runs = [_run(1, 0.020), _run(4, 0.030), _run(1, 0.021), _run(4, 0.031)]
    report = ScaleReport(messages=1000, devices=10, runs=runs)
    assert report.cost_spread > 0.4
    assert report.speedup == pytest.approx(1.0)
