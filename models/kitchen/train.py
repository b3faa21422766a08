"""Train the kitchen detector from the shared photos: `python -m models.kitchen.train`.

One command, fixed seed and split, resumable: every epoch ends with a checkpoint in
`--work-dir`, and running the same command again continues from it (the augmentation of epoch
k is drawn from a generator seeded with (seed, k), so a resumed run sees the same images a
straight one would). The best epoch by held-out mAP@0.5 (EMA weights) is exported to ONNX with
its manifest; `python -m models.kitchen.card` then writes the model card from `vigil models eval`.

Needs the `train` extra (torch, CPU build). A smoke run: `--epochs 1 --limit 16`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.cli import default_data
from models.kitchen.data import (
    CLASSES,
    KITCHEN_SETS,
    SOURCES,
    VAL_FRACTION,
    Sample,
    TrainSet,
    classes_for,
    discover,
    split,
)
from models.kitchen.evaluate import ClassReport
from models.kitchen.evaluate import evaluate as evaluate_model
from models.kitchen.export import export_onnx, write_manifest
from models.kitchen.loss import DetectionLoss
from models.kitchen.yolox import DetectorNet, build_net
from vigil.progress import Progress

WARMUP_EPOCHS = 2  # linear warm-up: from-scratch BatchNorm statistics are wild for the first steps
FINAL_LR_FRACTION = 0.05  # cosine decay ends at 5 % of the peak rate
EMA_DECAY = 0.9999  # YOLOv8's EMA; its ramp (tau) makes early epochs follow the raw weights
EMA_TAU = 2000


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.kitchen.train", description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", type=Path, default=None, help="datasets root ($VIGIL_DATASETS or ../shared/datasets)"
    )
    p.add_argument("--work-dir", type=Path, default=Path("runs/kitchen"))
    p.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent, help="where kitchen.onnx/.toml go"
    )
    p.add_argument("--name", default="kitchen")
    p.add_argument(
        "--sets",
        default=",".join(KITCHEN_SETS),
        help="the datasets trained together, comma-separated: the model's classes are theirs "
        "(masks,cigarettes: the kitchen model; fire: the fire and smoke model)",
    )
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--size", type=int, default=384, help="square input size, a multiple of 32")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--init",
        choices=("scratch", "yolox-nano"),
        default="scratch",
        help="scratch: KitchenNet at --width/--depth; yolox-nano: COCO-pretrained YOLOX-Nano backbone + "
        "neck from --pretrained under the same head (--width/--depth unused)",
    )
    p.add_argument(
        "--pretrained",
        type=Path,
        # The repository's copy (unchanged from ../shared/pretrained/yolox_nano.onnx, same SHA-256).
        default=Path(__file__).resolve().parents[1] / "yolox-nano-coco.onnx",
        help="YOLOX-Nano ONNX export for --init yolox-nano (models/yolox-nano-coco.onnx)",
    )
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--depth", type=float, default=0.67)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--close-mosaic", type=int, default=10, help="last epochs without mosaic")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument(
        "--limit", type=int, default=0, help="use only the first N photos of each set (smoke runs)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="train at most N epochs in this run, then exit with the checkpoint saved (time-boxed runs)",
    )
    p.add_argument(
        "--negatives",
        default="",
        help="datasets whose photos join as negatives only, their own labels dropped (fire model: "
        "masks, street and indoor photos with no fire or smoke in them)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="bf16 autocast (weights stay fp32) is ~5x faster than fp32 on a CPU with AMX or AVX-512 BF16 "
        "and ~8x slower on one without (it is emulated there); auto picks by the CPU's flags",
    )
    args = p.parse_args(argv)
    if args.size % 32:
        p.error("--size must be a multiple of 32 (the largest stride)")
    try:
        given = {s.strip() for s in args.sets.split(",") if s.strip()}
        args.classes = classes_for(sorted(given))  # refuses unknown names
        args.sets = tuple(s.name for s in SOURCES if s.name in given)  # one order, whatever was typed
        args.negatives = tuple(s.strip() for s in args.negatives.split(",") if s.strip())
        if args.negatives:
            classes_for(args.negatives)  # known set names
        if set(args.negatives) & set(args.sets):
            raise ValueError("a set is either trained on or a source of negatives, not both")
    except ValueError as exc:
        p.error(str(exc))
    args.precision_auto = args.precision == "auto"
    if args.precision_auto:
        args.precision = "bf16" if _native_bf16() else "fp32"
    return args


def _native_bf16() -> bool:
    """AMX or AVX-512 BF16 on this CPU (Linux's flags; anywhere else, assume not)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _collate(
    items: list[tuple[np.ndarray, np.ndarray, np.ndarray]], keep: np.ndarray
) -> tuple[torch.Tensor, ...]:
    """A batch, with labels renumbered from the datasets' class ids (CLASSES) to the model's:
    `keep` lists the dataset ids the model has, in its class order."""
    remap = np.full(len(CLASSES), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    images = np.stack([it[0][:, :, ::-1].transpose(2, 0, 1) for it in items])  # BGR HWC -> RGB CHW
    most = max(1, max(len(it[1]) for it in items))
    cls = torch.zeros(len(items), most, dtype=torch.long)
    box = torch.zeros(len(items), most, 4)
    valid = torch.zeros(len(items), most, dtype=torch.bool)
    for i, (_, boxes, _) in enumerate(items):
        n = len(boxes)
        cls[i, :n] = torch.from_numpy(remap[boxes[:, 0].astype(np.int64)])
        box[i, :n] = torch.from_numpy(boxes[:, 1:])
        valid[i, :n] = True
    labelled = torch.from_numpy(np.stack([it[2][keep] for it in items]))
    return torch.from_numpy(images).float().div_(255), cls, box, valid, labelled


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, object]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        # BatchNorm and biases are not decayed (decaying them only fights the normalisation).
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(epoch: float, total: int, peak: float) -> float:
    if epoch < WARMUP_EPOCHS:
        return peak * max(epoch / WARMUP_EPOCHS, 0.01)
    t = (epoch - WARMUP_EPOCHS) / max(total - WARMUP_EPOCHS, 1)
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, updates: int) -> None:
    d = EMA_DECAY * (1 - math.exp(-updates / EMA_TAU))
    msd = model.state_dict()
    for k, v in ema.state_dict().items():
        if v.dtype.is_floating_point:
            v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
        else:
            v.copy_(msd[k])


def _evaluate(
    ema: DetectorNet, args: argparse.Namespace, val: list[Sample], show: bool
) -> tuple[float, list[ClassReport]]:
    from detectors.vision.manifest import load_manifest

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{args.name}.onnx"
        export_onnx(ema, onnx_path, args.size)
        manifest = load_manifest(
            write_manifest(onnx_path, args.size, description="in-training check", classes=args.classes)
        )
        reports = evaluate_model(manifest, val, show=show)
    scored = [r.ap50 for r in reports if r.boxes]
    return (float(np.mean(scored)) if scored else 0.0), reports


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    samples = discover(args.data or default_data(), sets=args.sets + args.negatives)
    # Negatives keep no box: their classes are not the model's, and what they show is none of its.
    samples = [
        dataclasses.replace(s, boxes=s.boxes[:0]) if SOURCES[s.source].name in args.negatives else s
        for s in samples
    ]
    train, val = split(samples, args.seed, VAL_FRACTION)
    if args.limit:
        sources = sorted({s.source for s in samples})
        train = [s for src in sources for s in [x for x in train if x.source == src][: args.limit]]
        val = [s for src in sources for s in [x for x in val if x.source == src][: max(2, args.limit // 4)]]
    print(
        f"photos: {len(train)} training, {len(val)} held out (seed {args.seed}); sets {','.join(args.sets)}, "
        f"classes {', '.join(args.classes)}; {args.precision}",
        file=sys.stderr,
    )
    keep = np.array([CLASSES.index(c) for c in args.classes])
    negative_sources = frozenset(i for i, s in enumerate(SOURCES) if s.name in args.negatives)
    dataset = TrainSet(train, args.size, negative_sources)

    # channels_last lets oneDNN pick its blocked convolution kernels without reordering per layer.
    net = build_net(args.init, len(args.classes), args.width, args.depth, args.pretrained)
    model = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(_param_groups(model, 5e-4), lr=args.lr, betas=(0.937, 0.999))
    loss_fn = DetectionLoss(len(args.classes))

    args.work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.work_dir / "last.pt"
    history_path = args.work_dir / "history.jsonl"
    config = {
        k: v
        for k, v in vars(args).items()
        if k in ("size", "width", "depth", "seed", "epochs", "batch", "lr", "limit", "precision", "init")
    }
    config["sets"] = list(args.sets)  # a list, as it reads back from the checkpoint
    if args.negatives:  # absent from older checkpoints
        config["negatives"] = list(args.negatives)
    start_epoch, updates, best = 0, 0, -1.0
    if checkpoint.is_file() and not args.fresh:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        # Checkpoints from before --init and --sets were all from scratch, on the kitchen sets. A run
        # begun on another machine goes on in its own precision unless one was asked for here.
        if args.precision_auto and "precision" in state["config"]:
            config["precision"] = args.precision = state["config"]["precision"]
        if {"init": "scratch", "sets": list(KITCHEN_SETS), **state["config"]} != config:
            print(
                f"error: {checkpoint} was made with {state['config']}, not {config}; use --fresh",
                file=sys.stderr,
            )
            return 2
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, updates, best = state["epoch"] + 1, state["updates"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming after epoch {start_epoch} (best mAP@0.5 so far {best:.3f})", file=sys.stderr)

    steps_per_epoch = max(1, len(dataset) // args.batch)
    started = time.monotonic()
    for epoch in range(start_epoch, args.epochs):
        rng = random.Random(args.seed * 100_003 + epoch)
        order = list(range(len(dataset)))
        rng.shuffle(order)
        mosaic = epoch < args.epochs - args.close_mosaic
        model.train()
        totals = torch.zeros(3)
        with Progress(steps_per_epoch, f"epoch {epoch + 1}/{args.epochs}", unit="steps") as bar:
            for step in range(steps_per_epoch):
                lr = _lr_at(epoch + step / steps_per_epoch, args.epochs, args.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = [
                    dataset.item(i, rng, mosaic) for i in order[step * args.batch : (step + 1) * args.batch]
                ]
                images, cls, box, valid, labelled = _collate(batch, keep)
                images = images.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                    feats = model(images)
                # The assignment and the losses run in fp32: bf16's 8-bit mantissa would blur IoUs.
                loss, parts = loss_fn([f.float() for f in feats], cls, box, valid, labelled)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)  # from-scratch spikes
                optimizer.step()
                updates += 1
                _ema_update(ema, model, updates)
                totals += parts
                bar.advance()
        record: dict[str, object] = {
            "epoch": epoch + 1,
            "loss_box_cls_dfl": [round(float(x) / steps_per_epoch, 4) for x in totals],
            "lr": round(lr, 6),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        last = epoch + 1 == args.epochs
        if last or (epoch + 1) % args.eval_every == 0:
            score, reports = _evaluate(ema, args, val, show=False)
            record["map50"] = round(score, 4)
            record["per_class_ap50"] = {r.name: round(r.ap50, 4) for r in reports}
            if score > best:
                best = score
                torch.save(
                    {"ema": ema.state_dict(), "epoch": epoch + 1, "map50": score, "config": config},
                    args.work_dir / "best.pt",
                )
        print(json.dumps(record), file=sys.stderr)
        with history_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "updates": updates,
                "best": best,
                "config": config,
                "torch_rng": torch.get_rng_state(),
            },
            tmp,
        )
        tmp.replace(checkpoint)  # atomic: a kill mid-save leaves the previous checkpoint
        if args.stop_after and epoch + 1 - start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            print(f"stopped after epoch {epoch + 1} of {args.epochs}; run again to resume", file=sys.stderr)
            return 0

    best_path = args.work_dir / "best.pt"
    state = torch.load(
        best_path if best_path.is_file() else checkpoint, map_location="cpu", weights_only=False
    )
    ema.load_state_dict(state["ema"])
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.name}.onnx"
    export_onnx(ema, onnx_path, args.size)
    origin = {
        "scratch": "trained from scratch",
        "yolox-nano": "fine-tuned from the COCO-pretrained YOLOX-Nano backbone and neck (Megvii, Apache-2.0; "
        "ONNX export by Kazuhito00) under a new head",
    }[args.init]
    what = {
        "masks": "masks",
        "cigarettes": "cigarettes",
        "fire": "fire and smoke",
    }
    manifest = write_manifest(
        onnx_path,
        args.size,
        classes=args.classes,
        description=(
            f"Detector of {' and '.join(what[s] for s in args.sets)}, {origin} on the shared photos"
            + (f" (negatives: the {', '.join(args.negatives)} photos)" if args.negatives else "")
            + " by "
            f"python -m models.kitchen.train (seed {args.seed}, {args.epochs} epochs, {args.size}px, "
            f"best epoch {state.get('epoch')}). See {args.name}.md."
        ),
    )
    print(f"wrote {onnx_path} and {manifest}; best held-out mAP@0.5 {best:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
