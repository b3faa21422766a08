"""`vigil bench clips` on a tiny run (its own embedded Kafka for the live view): every figure is
there, positive, beside the limit measured in the same run, the live path delivered every frame
to every watcher, and the memory figures add up. Speeds are for the benchmark, never tests: the
ratio bounds below only catch a figure measured against the wrong thing."""

from __future__ import annotations

import argparse
import math

import orjson
import pytest

from benchmarks import cli
from benchmarks.clips import SECTION_ENCODE, SECTION_LIVE, SECTION_LOOP, SECTION_MEMORY, measure
from benchmarks.report import print_report
from vigil.settings import Settings

pytestmark = pytest.mark.integration

# (section, how many figures, and which carry a raw limit)
SECTIONS = {SECTION_MEMORY: (4, 4), SECTION_ENCODE: (3, 2), SECTION_LIVE: (2, 2), SECTION_LOOP: (4, 3)}


async def test_a_tiny_run_reports_every_figure_against_the_limits_it_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A 2 s clip (4 frames) keeps VP9 to a second; 10 live frames at 20 fps, half a second a run.
    report = await measure(Settings(mode="demo"), cameras=3, rounds=1, loop_frames=20, live_frames=10,
                           watchers=(1, 2), window_s=2.0, vp9=True)  # fmt: skip

    assert report.errors == {}
    for section, (count, limited) in SECTIONS.items():
        figures = [f for f in report.figures if f.section == section]
        assert len(figures) == count, section
        assert sum(f.limit is not None for f in figures) == limited, section
        assert report.sections[section] > 0
    for f in report.figures:
        assert math.isfinite(f.value) and f.value > 0, f.name
        if f.limit is not None:
            assert math.isfinite(f.limit) and f.limit > 0, f.name
            assert f.ratio == pytest.approx(f.value / f.limit), f.name

    pulled, pulled_rss, ring, rss = (f for f in report.figures if f.section == SECTION_MEMORY)
    # A pulled camera's ring holds its stream's packets, never more than the byte bound.
    assert pulled.limit == Settings().clip_stream_max_bytes / 2**20
    assert 0 < pulled.value <= pulled.limit and "packets of" in pulled.note
    assert ring.limit is not None and 0 < ring.value <= ring.limit  # never more than its byte bound
    assert ring.limit == Settings().clip_buffer_max_bytes / 2**20
    # Three rings of the same frames or stream, out of step: their bytes are about three of one ring's.
    assert rss.limit == pytest.approx(3 * ring.value, rel=0.2)
    assert pulled_rss.limit == pytest.approx(3 * pulled.value, rel=0.2)
    # The kernel's charge for the bytes is at least most of them, and not several times them.
    for figure in (rss, pulled_rss):
        assert figure.ratio is not None and 0.5 < figure.ratio < 3, figure

    raw_vp8, clip, vp9 = (f for f in report.figures if f.section == SECTION_ENCODE)
    assert clip.limit == raw_vp8.value and vp9.limit == raw_vp8.value
    assert "4 frames" in raw_vp8.name and "2 s at 2 fps" in clip.note

    one, two = (f for f in report.figures if f.section == SECTION_LIVE)
    assert "delivered 10/10 (raw 10)" in one.note and "delivered 20/20 (raw 20)" in two.note
    assert one.ratio is not None and two.ratio is not None and 0.05 < one.ratio < 50 and 0.05 < two.ratio < 50

    raw, off, on, against = (f for f in report.figures if f.section == SECTION_LOOP)
    assert off.limit == on.limit == raw.value and against.limit == off.value and against.value == on.value
    # Decoding plus more work is no faster than decoding alone (a generous margin for noise).
    assert off.ratio is not None and on.ratio is not None and off.ratio < 1.5 and on.ratio < 1.5
    assert against.target == 0.95 and against.verdict in ("PASS", "FAIL")
    assert "static (gated)" in raw.note

    print_report(report)
    out = capsys.readouterr().out
    assert all(f.name in out for f in report.figures)
    assert "load average" in out and "summary — " in out
    body = orjson.loads(report.to_json())
    assert [f["name"] for f in body["figures"]] == [f.name for f in report.figures]


def test_the_command_is_registered_with_its_options() -> None:
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "clips", "--json", "out.json", "--cameras", "5", "--no-vp9"])
    assert args.handler is cli._clips
    assert (args.json, args.cameras, args.vp9, args.watchers) == ("out.json", 5, False, "1,2,4")
