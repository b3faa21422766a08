"""Set a model's operating scores from its held-out figures: `python -m models.kitchen.thresholds`.

Each class that raises a violation gets `min_score` = its best-F1 score on the held-out split,
rounded down to a 0.05 step (never below MIN_SCORE); `score_threshold` (the NMS pre-filter) is
lowered to the smallest of them when needed, since the loader requires min_score >= it. The
scores are chosen on the same photos the card reports, so the card's precision and recall at
them are optimistic, and it says so; mAP does not depend on them.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

MIN_SCORE = 0.1  # below this a from-scratch model's scores are mostly noise
STEP = 0.05
# A class whose best F1 is below this is too weak to raise alerts at its best-F1 score (it would
# mostly raise false ones); it keeps a confident WEAK_CLASS_SCORE instead.
MIN_USEFUL_F1, WEAK_CLASS_SCORE = 0.3, 0.5


def rounded(score: float, f1: float) -> float:
    if math.isnan(score) or f1 < MIN_USEFUL_F1:
        return WEAK_CLASS_SCORE
    return max(MIN_SCORE, math.floor(score / STEP) * STEP)


def rewrite(text: str, scores: dict[str, float]) -> str:
    for name, score in scores.items():
        text, found = re.subn(
            rf"(\[violations\.{re.escape(name)}\]\ncode = \"[A-Z_]+\"\nmin_score = )[0-9.]+",
            rf"\g<1>{score:.2f}",
            text,
        )
        if not found:
            raise ValueError(f"no [violations.{name}] table with a min_score in the manifest")
    lowest = min(scores.values())
    current = float(re.search(r"^score_threshold = ([0-9.]+)", text, re.M).group(1))  # type: ignore[union-attr]
    if lowest < current:
        text = re.sub(r"^score_threshold = [0-9.]+", f"score_threshold = {lowest:.2f}", text, flags=re.M)
    return text


def main(argv: list[str] | None = None) -> int:
    from detectors.vision.manifest import find_manifest, load_manifest
    from models.cli import default_data
    from models.kitchen.data import TRAINED_SPLITS, discover, held_out_for, sets_for
    from models.kitchen.evaluate import evaluate

    p = argparse.ArgumentParser(
        prog="python -m models.kitchen.thresholds", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="kitchen")
    p.add_argument(
        "--data", type=Path, default=None, help="datasets root ($VIGIL_DATASETS or ../shared/datasets)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--trained-split",
        choices=TRAINED_SPLITS,
        default="file",
        help="the split the model was trained under (see `vigil models eval --help`)",
    )
    args = p.parse_args(argv)
    manifest = load_manifest(find_manifest(args.model))
    samples = discover(args.data or default_data(), sets=sets_for(manifest.classes))
    held_out = held_out_for(samples, args.seed, args.trained_split)
    reports = {r.name: r for r in evaluate(manifest, held_out)}
    scores = {name: rounded(reports[name].f1_score, reports[name].f1) for name in manifest.violations}
    path = manifest.manifest_path
    path.write_text(rewrite(path.read_text(encoding="utf-8"), scores), encoding="utf-8")
    load_manifest(path)  # still valid
    for name, score in scores.items():
        r = reports[name]
        print(f"{name:<24} min_score {score:.2f}  (best F1 {r.f1:.2f} at {r.f1_score:.3f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
