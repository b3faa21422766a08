"""Write the fire and smoke model card: `python -m models.kitchen.fire_card`.

Measured in one run, as the kitchen card is: held-out accuracy of the fp32 model and its int8
variant through the service's decoder, bare onnxruntime speed of both beside the kitchen model's
(the per-frame cost a second model adds), and the pretrained start against training from scratch
on the same grouped split and budget, read from the two runs' history files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnxruntime as ort

from models.kitchen.card import accuracy_table
from models.kitchen.compare import comparison, history

TARGETS = {"fire": 0.60, "smoke": 0.60}  # mAP@0.5 on the grouped held-out split (issue 23)


def main(argv: list[str] | None = None) -> int:
    from detectors.vision.manifest import find_manifest, load_manifest
    from models.cli import default_data
    from models.kitchen.data import CLASSES, VAL_FRACTION, discover, sets_for, split
    from models.kitchen.evaluate import alarmed_photos, evaluate
    from models.kitchen.quantize import time_session
    from vigil.machine import machine

    p = argparse.ArgumentParser(prog="python -m models.kitchen.fire_card", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fire-smoke")
    p.add_argument(
        "--data", type=Path, default=None, help="datasets root ($VIGIL_DATASETS or ../shared/datasets)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained-history", type=Path, default=Path("runs/fire-pre/history.jsonl"))
    p.add_argument("--scratch-history", type=Path, default=Path("runs/fire-scratch/history.jsonl"))
    p.add_argument(
        "--shipped-history",
        type=Path,
        default=Path("runs/fire-neg/history.jsonl"),
        help="the run that made the shipped model (the YOLOX-Nano start with the mask photos as negatives)",
    )
    p.add_argument("--notes", type=Path, default=None, help="markdown appended as 'Training notes'")
    args = p.parse_args(argv)

    fp32 = load_manifest(find_manifest(args.model))
    int8 = load_manifest(find_manifest(fp32.manifest_path.with_name(f"{fp32.name}-int8.toml")))
    kitchen = load_manifest(find_manifest("kitchen"))
    samples = discover(args.data or default_data(), sets=sets_for(fp32.classes))
    train, held_out = split(samples, args.seed)
    print("held-out accuracy, fp32 then int8", file=sys.stderr)
    acc32, acc8 = evaluate(fp32, held_out), evaluate(int8, held_out)
    box = machine()
    size, kitchen_size = fp32.input_size[0], kitchen.input_size[0]
    speed = {
        b: (
            time_session(fp32.path, size, b),
            time_session(int8.path, size, b),
            time_session(kitchen.path, kitchen_size, b),
        )
        for b in (1, 8)
    }
    counts = {name: [0, 0] for name in fp32.classes}
    for group, index in ((train, 0), (held_out, 1)):
        for s in group:
            for c in s.boxes[:, 0].astype(int):
                counts[CLASSES[c]][index] += 1
    negatives = sum(1 for s in held_out if len(s.boxes) == 0)
    # Photos with no fire in them: the other sets' held-out photos (never trained on, negatives
    # included: the mask photos' training part was the shipped model's negatives).
    others = {
        name: split(discover(args.data or default_data(), sets=(name,)), args.seed)[1]
        for name in ("masks", "cigarettes")
    }
    alarms = {
        name: (alarmed_photos(fp32, photos), alarmed_photos(int8, photos), len(photos))
        for name, photos in others.items()
    }

    lines = [
        f"# Model card: {fp32.name}",
        "",
        "Fire and smoke on camera frames. The backbone and neck are YOLOX-Nano's, **pretrained on COCO** "
        "(copied from the ONNX export and checked against it: `models/kitchen/yolox.py`), under the kitchen "
        "detector's YOLOv8 head, fine-tuned on the real frames in `../shared/datasets/fire/`. "
        f"Input {size}x{size} letterboxed RGB; output `(B, {4 + len(fp32.classes)}, N)`, YOLOv8 layout. "
        f"Files: `{fp32.path.name}` ({fp32.path.stat().st_size / 1e6:.1f} MB, fp32) and "
        f"`{int8.path.name}` ({int8.path.stat().st_size / 1e6:.1f} MB, static int8 QDQ).",
        "",
        "## Intended use",
        "`fire` → `FIRE_OPEN_FLAME`, `smoke` → `FIRE_SMOKE`, both critical and tier 1 (an instant warning). "
        "Run as a second vision detector beside the kitchen one (`VIGIL_VISION_MODEL=fire-smoke`: its own "
        "consumer group, so it sees every frame). **Zones decide where a flame counts**: in a kitchen "
        "a flame on the stove is cooking, so kitchen cameras mark the stove as an exclusion zone "
        '(`"exclude": true`, `"codes": ["FIRE_OPEN_FLAME"]`); on special-equipment sites (boiler rooms, '
        "gas stations) no zone is needed and a flame anywhere counts. A screening aid: an operator "
        "verifies every alert.",
        "",
        "## Data, weights, licences, attribution",
        "- fire v8 (project fire-wrpgm, workspace custom-thxhn), Roboflow Universe, CC BY 4.0, as "
        "republished in repository Abonia1/YOLOv8-Fire-and-Smoke-Detection: "
        f"{len(samples)} CCTV and phone frames.",
        "- YOLOX-Nano COCO weights: Megvii YOLOX, Apache-2.0; ONNX export by Kazuhito00 "
        "(YOLOX-ONNX-TFLite-Sample), Apache-2.0.",
        "",
        "Split: grouped by source video and by runs of neighbouring frame numbers "
        f"(`models/kitchen/groups.py`, seed {args.seed}, {VAL_FRACTION:.0%} held out): {len(train)} "
        f"training frames, {len(held_out)} held out ({negatives} of them with neither fire nor smoke). "
        "The int8 calibration uses training frames only.",
        "",
        "| class | training boxes | held-out boxes |",
        "|---|---:|---:|",
        *[f"| {name} | {a} | {b} |" for name, (a, b) in counts.items()],
        "",
        "## Held-out accuracy (`vigil models eval --model fire-smoke`)",
        "Through the service path; COCO 101-point AP; precision and recall at the manifest's operating "
        "scores (chosen near each class's best F1 on this held-out split: optimistic), IoU 0.5. A violation "
        "also needs hits in k of a camera's last n frames.",
        "",
        "### fp32",
        *accuracy_table(acc32, TARGETS),
        "",
        f"### int8 (`{int8.path.name}`)",
        *accuracy_table(acc8, TARGETS),
        "",
        "Single-frame false alarms (any fire or smoke box at the operating scores) on held-out photos "
        "of the other sets, which show no fire: "
        + "; ".join(f"{name} {a32} of {n} fp32, {a8} of {n} int8" for name, (a32, a8, n) in alarms.items())
        + " (the cigarette photos show real cigarette smoke and lighter flames now and then).",
        "",
        "## Speed (bare onnxruntime sessions, this run)",
        f"Machine: {box['cpu']}, {box['cores']} cores, load {box['load_at_start'][0]:.1f} at the start; "
        f"onnxruntime {ort.__version__}. The kitchen model ({kitchen_size}px) beside it: what running both "
        "costs per frame.",
        "",
        "| batch | fp32 images/s | int8 images/s | kitchen fp32 images/s | fire fp32 time / kitchen |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {b} | {f:.1f} | {q:.1f} | {k:.1f} | {k / f:.2f}x |" for b, (f, q, k) in speed.items()],
        "",
        "## A pretrained start against training from scratch",
        "Same grouped split, recipe and budget (epochs, input size, batch, learning rate, augmentation): "
        "`python -m models.kitchen.train --sets fire --init yolox-nano` against `--init scratch` "
        "(the kitchen network, width 0.5); the shipped model is the YOLOX-Nano start with the mask "
        "photos added as negatives (`--negatives masks`, below). Held-out mAP@0.5 of the EMA weights "
        "on the fire set's held-out frames (the negatives' own held-out photos are not in this figure):",
        "",
        *comparison(
            [
                ("YOLOX-Nano start", history(args.pretrained_history)),
                ("from scratch", history(args.scratch_history)),
                ("shipped: YOLOX-Nano start + negatives", history(args.shipped_history)),
            ],
            ["fire", "smoke"],
        ),
        "",
    ]
    if args.notes and args.notes.is_file():
        lines += ["## Training notes", args.notes.read_text(encoding="utf-8").strip(), ""]
    lines += [
        "## Known blind spots",
        "- 839 frames from a few dozen scenes, most of them streets, offices and shops; few kitchens, "
        "no boiler rooms. Steam, sunlight, red or orange clothing and lamps can look like flame or "
        "smoke to it.",
        "- A flame on the stove is only cooking if the camera's exclusion zone covers the stove.",
        "- Smoke is diffuse and its boxes in the data are loose: its IoU-based figures understate what an "
        "operator would accept, and its false alarms are the likelier.",
        "- Trained for a short budget on 2 CPU cores (see above); more epochs would help.",
        "",
    ]
    out = fp32.manifest_path.with_suffix(".md")
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
