"""`vigil models ...`: list the bundled models and measure one on the held-out photos."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detectors.vision.manifest import ModelManifest


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
        help="datasets root holding any of masks/, cigarettes/, fire/ "
        "(default: $VIGIL_DATASETS or ../shared/datasets)",
    )
    ev.add_argument(
        "--split",
        choices=("held-out", "all"),
        default="held-out",
        help="held-out: the grouped split's held-out photos the model never saw (same seed); "
        "all: every photo under --data",
    )
    ev.add_argument(
        "--trained-split",
        choices=("file", "grouped"),
        default="file",
        help="the split the model was trained under. file (the shipped kitchen model, trained before "
        "the grouped split): only held-out photos whose whole source group the old per-file split also "
        "held out, so no augmented copy was trained on. grouped: every grouped held-out photo",
    )
    ev.add_argument(
        "--seed", type=int, default=0, help="split seed; must be the one the model was trained with"
    )
    ev.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ev.add_argument(
        "--phone-labels",
        type=Path,
        default=None,
        help="phone use: the labelled photos for a model with a held_by rule raising KITCHEN_PHONE_USE "
        "(default: models/phone-use-labels.csv, paths under the datasets root's parent)",
    )
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

    manifest = load_manifest(find_manifest(args.model))
    data = args.data or default_data()
    if any(v.held_by is not None for v in manifest.violations.values()):
        # A relation rule (phone use) is judged per image on its own labels, not the kitchen sets.
        return _phone_use(manifest, data.parent, args)

    from models.kitchen.data import CLASSES, SOURCES, discover, held_out_for
    from models.kitchen.evaluate import evaluate, format_reports, no_mask_false_alarms

    if not data.is_dir():
        print(f"error: no datasets at {data} (pass --data or set VIGIL_DATASETS)", file=sys.stderr)
        return 2
    try:
        samples = discover(data, partial=True)
    except FileNotFoundError:
        print(f"error: none of masks/, cigarettes/, fire/ under {data}", file=sys.stderr)
        return 2
    # A set that labels none of the model's classes (the fire set for the kitchen model) cannot
    # score it: say so rather than pass over it in silence, and leave its photos out.
    unscored = {
        index
        for index, source in enumerate(SOURCES)
        if not {CLASSES[c] for c in source.class_map} & set(manifest.classes)
    }
    for index in sorted({s.source for s in samples} & unscored, key=lambda i: SOURCES[i].name):
        print(f"{SOURCES[index].name}/: model {manifest.name} has none of its classes: not scored")
    samples = [s for s in samples if s.source not in unscored]
    if args.split == "held-out":
        chosen = held_out_for(samples, args.seed, args.trained_split)
        what = (
            f"held-out photos (grouped split, seed {args.seed}; trained under the {args.trained_split} split)"
        )
    else:
        chosen, what = samples, "photos (all)"
    reports = evaluate(manifest, chosen)
    print(f"model {manifest.name} ({manifest.path.name}), {len(chosen)} {what} from {data}")
    print(format_reports(reports))
    if any(v.code == "KITCHEN_NO_MASK" for v in manifest.violations.values()):
        alarms = no_mask_false_alarms(manifest, chosen)
        print(
            f"no-mask false alarms (single frame, operating scores): {alarms.alarms} of {alarms.images} "
            f"photos showing only correctly masked faces ({alarms.rate:.1%})"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n", encoding="utf-8")
    return 0


def _phone_use(manifest: ModelManifest, shared: Path, args: argparse.Namespace) -> int:
    from models.phone_use import LABELS, evaluate, format_reports, phone_rule, read_labels

    labels = read_labels(args.phone_labels or LABELS)
    phone, _ = phone_rule(manifest)
    operating = manifest.violations[manifest.classes[phone]].min_score
    reports = evaluate(manifest, shared, labels)
    print(
        f"model {manifest.name} ({manifest.path.name}), phone use (KITCHEN_PHONE_USE): "
        f"{len(labels)} labelled images under {shared}, "
        f"{reports[0].positives} showing a person holding a phone"
    )
    print("per image, one frame (the service's k-of-n confirmation is not applied)")
    print(format_reports(reports, operating))
    if args.json:
        rows = [{**asdict(r), "precision": r.precision, "recall": r.recall} for r in reports]
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0
