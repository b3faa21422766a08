"""`vigil bench …`: every benchmark against the raw limit measured in the same run.

Added to the `vigil` command through the `vigil.commands` entry point, like every command: the
benchmarks sit above the shell, which never imports them."""

from __future__ import annotations

import argparse
from typing import Any

from vigil.settings import Settings


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1")
    return value


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="benchmarks against raw limits; alone (or `bench all`): every one, one report"
    )
    bench.set_defaults(handler=_report)
    bsub = bench.add_subparsers(dest="bench_command", required=False)
    ball = bsub.add_parser("all", help="every benchmark in modest sizes, one report (as plain `bench`)")
    ball.set_defaults(handler=_report)
    for parser, default in ((bench, None), (ball, argparse.SUPPRESS)):
        # On both, so `vigil bench --json x` and `vigil bench all --json x` work; SUPPRESS keeps
        # the subcommand's absent options from overwriting what was given before it.
        parser.add_argument("--json", metavar="PATH", default=default, help="also write the report as JSON")
        parser.add_argument(
            "--faults", action="store_true", default=default or False, help="add the quick fault suite"
        )
        parser.add_argument(
            "--only", action="append", default=default, choices=["vision", "telemetry", "storage", "scale"],
            help="only this section (repeatable)",
        )  # fmt: skip
    bst = bsub.add_parser(
        "storage", help="telemetry writes, queries and size on native partitions and on TimescaleDB"
    )
    bst.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    _add_storage_sizes(bst)
    bst.set_defaults(handler=_storage)
    bs = bsub.add_parser("scale", help="1, 2 and 4 telemetry detector processes in one consumer group")
    bs.add_argument("--messages", type=int, default=100_000, help="readings in each run's backlog")
    bs.add_argument("--devices", type=int, default=500, help="simulated devices (one in ten out of limits)")
    bs.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (first: the base)")
    bs.add_argument(
        "--repeat", type=_at_least_one, default=3, help="runs per count, interleaved; medians judged"
    )
    bs.set_defaults(handler=_scale)
    bv = bsub.add_parser("vision", help="the vision loop against raw onnxruntime, same model and batch")
    bv.add_argument("--model", default=None, help="manifest name or path (default: the compute stand-in)")
    bv.add_argument("--batch", type=int, default=8)
    bv.add_argument("--frames", type=int, default=400, help="frames through the full loop")
    bv.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    bv.set_defaults(handler=_vision)
    bt = bsub.add_parser(
        "telemetry", help="MQTT → alert, ingest, detector and rules against raw MQTT and Kafka"
    )
    bt.add_argument("--messages", type=int, default=50_000, help="readings per measured stage")
    bt.add_argument("--devices", type=int, default=500, help="simulated devices (one in ten out of limits)")
    bt.add_argument("--latency-s", type=float, default=10.0, help="seconds of the real-time latency stream")
    bt.set_defaults(handler=_telemetry)
    bc = bsub.add_parser(
        "clips", help="video evidence: ring memory, clip encoding, live view, ingest with clips on/off"
    )
    bc.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    bc.add_argument("--cameras", type=int, default=100, help="cameras whose full rings one process holds")
    bc.add_argument(
        "--rounds", type=int, default=3, help="rounds of encoding and of the loop (the best counts)"
    )
    bc.add_argument(
        "--loop-frames", type=int, default=800, help="stream packets through the camera-ingest loop a round"
    )
    bc.add_argument("--live-frames", type=int, default=100, help="frames to the live watchers a run")
    bc.add_argument("--watchers", default="1,2,4", help="live watcher counts, comma-separated")
    bc.add_argument("--vp9", action=argparse.BooleanOptionalAction, default=True,
                    help="also time VP9 on the same frames (a few seconds)")  # fmt: skip
    bc.set_defaults(handler=_clips)
    bf = bsub.add_parser(
        "faults", help="kill -9 each service, cut the database, Kafka, MQTT; a 10x burst: nothing lost"
    )
    bf.add_argument("--quick", action="store_true", help="the CI-sized suite (a few minutes)")
    bf.add_argument("--fault", action="append", help="only this fault (repeatable): 'kill -9 alerts'")
    bf.add_argument("--no-overload", action="store_true", help="skip the 10x burst")
    bf.set_defaults(handler=_faults)


def _add_storage_sizes(parser: argparse.ArgumentParser) -> None:
    # Defaults: the report's modest sizes (benchmarks.storage.Sizes); smaller for a quick look.
    parser.add_argument("--rows", type=int, default=100_000, help="rows per write path and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the write paths (the best counts)")
    parser.add_argument("--devices", type=int, default=1000, help="devices of the query fleet")
    parser.add_argument("--days", type=int, default=7, help="days of readings per device")
    parser.add_argument("--interval-s", type=int, default=120, help="seconds between a device's readings")


# Each benchmark is imported only when it runs: they pull in every service and its libraries.


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "only", None) == ["storage"] and not getattr(args, "faults", False):
        # The storage section alone is `bench storage`, at its default sizes: both backends side
        # by side (benchmarks.report's storage section measures the plain PostgreSQL only).
        return await _storage(settings, args)
    from benchmarks.report import run_bench_report

    return await run_bench_report(settings, args)


async def _storage(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.storage import run_storage_bench

    return await run_storage_bench(settings, args)


async def _scale(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.scale import run_scale_bench

    return await run_scale_bench(settings, args)


async def _vision(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.vision import run_vision_bench

    return await run_vision_bench(settings, args)


async def _telemetry(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.telemetry import run_telemetry_bench

    return await run_telemetry_bench(settings, args)


async def _clips(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.clips import run_clips_bench

    return await run_clips_bench(settings, args)


async def _faults(settings: Settings, args: argparse.Namespace) -> int:
    from shell.faults.faults import bench_faults

    return await bench_faults(quick=args.quick, faults=args.fault, overload=not args.no_overload)
