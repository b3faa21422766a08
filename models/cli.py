"""`vigil models ...`: list the bundled models and measure one on the held-out photos."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from dataclasses import asdict
from pathlib import Path


def default_data() -> Path:
    """VIGIL_DATASETS, else `../shared/datasets` beside the checkout (where the bureau keeps them)."""
    configured = os.environ.get("VIGIL_DATASETS")
    return (
        Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="vision models: list, evaluate on held-out photos")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="bundled models and their classes")
    ev = msub.add_parser(
        "eval", help="mAP@0.5, mAP@0.5:0.95, precision/recall per class on the held-out split"
    )
    ev.add_argument("--model", default="kitchen", help="manifest name or path (default: kitchen)")
    ev.add_argument(
        "--data",
        type=Path,
        default=None,
        help="datasets root with masks/ and cigarettes/ (default: $VIGIL_DATASETS or ../shared/datasets)",
    )
    ev.add_argument(
        "--split",
        choices=("held-out", "all"),
        default="held-out",
        help="held-out: the photos training never saw (same seed); all: every photo under --data",
    )
    ev.add_argument(
        "--seed", type=int, default=0, help="split seed; must be the one the model was trained with"
    )
    ev.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    models.set_defaults(handler=run)


def run(settings: object, args: argparse.Namespace) -> int:
    from detectors.vision.manifest import default_models_dir, find_manifest, load_manifest

    if args.models_command == "list":
        for path in sorted(default_models_dir().glob("*.toml")):
            kind = tomllib.loads(path.read_text(encoding="utf-8")).get("type")
            if kind != "yolo":  # the early-warning model scores telemetry, not frames
                print(f"{path.stem:<20} ({kind} model, not for cameras)")
                continue
            manifest = load_manifest(path)
            w, h = manifest.input_size
            print(f"{manifest.name:<20} {w}x{h}  {', '.join(manifest.classes)}")
        return 0

    from models.kitchen.data import discover, split
    from models.kitchen.evaluate import evaluate, format_reports

    manifest = load_manifest(find_manifest(args.model))
    data = args.data or default_data()
    if not data.is_dir():
        print(f"error: no datasets at {data} (pass --data or set VIGIL_DATASETS)", file=sys.stderr)
        return 2
    samples = discover(data)
    chosen = split(samples, args.seed)[1] if args.split == "held-out" else samples
    reports = evaluate(manifest, chosen)
    what = f"held-out photos (seed {args.seed})" if args.split == "held-out" else "photos (all)"
    print(f"model {manifest.name} ({manifest.path.name}), {len(chosen)} {what} from {data}")
    print(format_reports(reports))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n", encoding="utf-8")
    return 0
