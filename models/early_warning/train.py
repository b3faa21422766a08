"""Train the early-warning model on simulated devices, export it to ONNX, measure it, write its card.

    python -m models.early_warning.train [--seed 7] [--out models/] [--jobs 2]

needs the `train` extra (`pip install -e '.[train]'`: scikit-learn and skl2onnx); the runtime
(`detectors/early_warning/`) needs only onnxruntime and numpy.

The episodes are planned and split (`episodes`), simulated into rows and labels (`simulation`),
fitted (`fit`) and exported (`export`); the operating point is chosen on the validation episodes
and measured on the test ones (`evaluate`). Writes `<out>/early-warning.onnx`, `.toml` (the
manifest the runtime reads) and `.md` (the model card, with the measured figures); the same seed
gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from models.early_warning.card import card_text
from models.early_warning.episodes import plan, plan_defaults, split
from models.early_warning.evaluate import choose_policy, device_risks, evaluate
from models.early_warning.export import NAME, export, manifest_text
from models.early_warning.fit import fit, training_arrays
from models.early_warning.simulation import simulate_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=7, help="seeds the episodes, the split and the model")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1], help="directory")
    parser.add_argument("--jobs", type=int, default=2, help="simulation processes")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        import skl2onnx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("training needs the train extra: pip install -e '.[train]' (scikit-learn, skl2onnx)")

    episodes = plan(args.seed)
    parts = split(episodes, args.seed)
    parts["defaults"] = plan_defaults(args.seed)
    sims = {name: simulate_all(eps, args.jobs, f"simulating {name}") for name, eps in parts.items()}
    x, y = training_arrays(sims["train"])
    print(
        f"training on {x.shape[0]} rows ({int(y.sum())} positive) from {len(sims['train'])} episodes",
        file=sys.stderr,
    )
    model = fit(x, y, args.seed)
    onnx_bytes = export(model, args.seed)

    policy, val = choose_policy(sims["validation"], device_risks(onnx_bytes, sims["validation"]))
    test = evaluate(sims["test"], device_risks(onnx_bytes, sims["test"]), policy)
    defaults = evaluate(sims["defaults"], device_risks(onnx_bytes, sims["defaults"]), policy)

    counts = {
        "episodes": len(episodes),
        "device_days": sum(s.minutes for part in sims.values() for s in part) / 1440,
        "train_rows": int(x.shape[0]),
        "train_positive": int(y.sum()),
    }
    command = "python -m models.early_warning.train" + (f" --seed {args.seed}" if args.seed != 7 else "")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.onnx").write_bytes(onnx_bytes)
    (out / f"{NAME}.toml").write_text(
        manifest_text(policy, test, defaults, args.seed, counts), encoding="utf-8"
    )
    (out / f"{NAME}.md").write_text(
        card_text(policy, val, test, defaults, args.seed, counts, command), encoding="utf-8"
    )

    digest = hashlib.sha256(onnx_bytes).hexdigest()[:16]
    summary = [
        f"early-warning model: {len(onnx_bytes) / 1024:.0f} KiB, sha256 {digest}, seed {args.seed}",
        f"  episodes        {len(episodes)} ({counts['device_days']:.0f} device-days, simulated only)",
        f"  train rows      {counts['train_rows']} ({counts['train_positive']} positive)",
        f"  operating point threshold {policy.threshold:g}, {policy.confirm_min} consecutive min to raise",
        f"  validation      {val.normal_warnings} false warnings in {val.normal_days:.0f} device-days, "
        f"{val.warned_before}/{val.faults} faults warned before the rule",
        "  test (held out):",
        f"    faults        {test.warned_before}/{test.faults} warned before the rule "
        f"({100 * test.warned_share:.0f} %)",
        f"    warning lead  median {test.lead(50):.0f} min, p10 {test.lead(10):.0f} min before the rule",
        f"    false alarms  {test.normal_warnings} in {test.normal_days:.0f} normal device-days "
        f"= {test.false_rate:.3f} per device-day",
        f"    traps         {test.trap_warnings} warnings in {test.traps} episodes whose rule never fired",
        f"  defaults        {defaults.normal_warnings} false warnings in {defaults.normal_days:.0f} normal "
        "device-days at default settings",
        f"  wrote           {out / NAME}.onnx, .toml, .md ({time.monotonic() - started:.0f} s)",
    ]
    print("\n".join(summary))


if __name__ == "__main__":
    main()
