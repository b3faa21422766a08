"""`vigil bench`'s report on made-up figures (the benchmarks themselves run in `vigil bench`, never
in tests): each ratio is against the limit beside it, each verdict against the design's target,
a section that fails to run is reported instead of hiding the others, and the JSON says the same."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from benchmarks import report as bench_report
from benchmarks.report import Figure
from vigil.settings import Settings


def test_verdicts_compare_the_value_or_the_ratio_with_the_target() -> None:
    loop = Figure("vision", "loop", 45.0, "frames/s", 50.0, "raw", 0.9, "ratio")
    slow = Figure("vision", "loop", 44.0, "frames/s", 50.0, "raw", 0.9, "ratio")
    rules = Figure("telemetry", "rules", 60_000.0, "msg/s", target=50_000.0)
    info = Figure("storage", "query", 3.0, "ms", 1.5, "raw read")
    assert (loop.ratio, loop.verdict) == (0.9, "PASS")
    assert slow.verdict == "FAIL"
    assert (rules.ratio, rules.verdict) == (None, "PASS")
    assert (info.ratio, info.verdict) == (2.0, "")


async def test_a_failing_section_is_reported_and_the_others_still_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async def good(_: Settings) -> list[Figure]:
        return [Figure("telemetry", "rules alone", 40_000.0, "msg/s", target=50_000.0)]

    async def broken(_: Settings) -> list[Figure]:
        raise RuntimeError("no broker")

    monkeypatch.setattr(bench_report, "SECTIONS", {"telemetry": good, "scale": broken})
    out = tmp_path / "report.json"
    code = await bench_report.run_bench_report(
        Settings(), argparse.Namespace(json=str(out), faults=False, only=None)
    )

    printed = capsys.readouterr().out
    assert code == 1
    assert "rules alone" in printed and "FAIL" in printed and "scale: FAILED TO RUN" in printed
    assert "summary — 0 of 1 targets met" in printed
    body = orjson.loads(out.read_bytes())
    assert body["errors"] == {"scale": "RuntimeError: no broker"}
    [figure] = body["figures"]
    assert figure["verdict"] == "FAIL" and figure["value"] == 40_000.0
    assert {"cpu", "cores", "ram_gib", "python", "onnxruntime", "load_at_end"} <= body["machine"].keys()
