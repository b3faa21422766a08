"""Training runs side by side: `python -m models.kitchen.compare NAME=HISTORY ...` prints held-out
mAP@0.5 per evaluated epoch of each run (its `history.jsonl`, written by `models.kitchen.train`)
as a markdown table, the per-class figures beside the mean. The cards' "pretrained start against
training from scratch" tables are this table."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def history(path: Path) -> list[dict[str, Any]]:
    """A run's epochs as the training loop wrote them; none where the run never wrote one."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def comparison(runs: list[tuple[str, list[dict[str, Any]]]], classes: list[str]) -> list[str]:
    """Held-out mAP@0.5 per evaluated epoch, the runs side by side, each cell the mean and then
    `classes`' own figures; and each run's epochs and wall time under the table."""
    by_epoch: dict[int, dict[str, dict[str, Any]]] = {}
    for name, rows in runs:
        for row in rows:
            if "map50" in row:
                by_epoch.setdefault(row["epoch"], {})[name] = row

    def cell(row: dict[str, Any] | None) -> str:
        if row is None:
            return "—"
        per = row.get("per_class_ap50", {})
        each = ", ".join(f"{c} {per.get(c, math.nan):.3f}" for c in classes)
        return f"{row['map50']:.3f} ({each})"

    heading = ", ".join(classes)
    lines = [
        "| epoch | " + " | ".join(f"{name}: mAP@0.5 ({heading})" for name, _ in runs) + " |",
        "|---:|" + "---|" * len(runs),
    ]
    for epoch in sorted(by_epoch):
        row = by_epoch[epoch]
        lines.append(f"| {epoch} | " + " | ".join(cell(row.get(name)) for name, _ in runs) + " |")
    for name, rows in runs:
        if rows:
            minutes = rows[-1].get("elapsed_s", 0) / 60
            lines.append(f"\n{name}: {len(rows)} epochs in {minutes:.0f} min of wall time.")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.kitchen.compare", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="NAME=HISTORY", help="a run's name and its history.jsonl")
    p.add_argument("--classes", required=True, help="comma-separated class names to show per cell")
    args = p.parse_args(argv)
    runs = []
    for spec in args.runs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error(f"{spec!r}: give NAME=PATH/TO/history.jsonl")
        rows = history(Path(path))
        if not rows:
            p.error(f"{path}: no such history, or an empty one")
        runs.append((name, rows))
    print("\n".join(comparison(runs, [c for c in args.classes.split(",") if c])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
