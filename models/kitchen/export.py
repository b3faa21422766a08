"""ONNX export and manifest of the kitchen detector."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch

from models.kitchen.net import ExportWrapper, KitchenNet
from models.kitchen.yolox import DetectorNet

OPSET = 17  # onnxruntime 1.17+ runs it everywhere; nothing newer is needed by these layers

# Operating points: a box must reach these scores to raise its catalogue code. Chosen on the
# held-out split (see the model card); score_threshold only pre-filters candidates for NMS.
VIOLATIONS = {
    "without_mask": ("KITCHEN_NO_MASK", 0.5),
    "mask_worn_incorrectly": ("KITCHEN_NO_MASK", 0.5),
    "cigarette": ("KITCHEN_SMOKING", 0.5),
    # Zones decide where a flame counts (vigil.cameras.Zone: the stove is an exclusion zone).
    "fire": ("FIRE_OPEN_FLAME", 0.5),
    "smoke": ("FIRE_SMOKE", 0.5),
}


def export_onnx(net: DetectorNet, path: Path, size: int) -> None:
    # ExportWrapper reads only `num_classes` and `net(x)`, which both detector classes provide;
    # its annotation names KitchenNet alone.
    model = ExportWrapper(cast(KitchenNet, copy.deepcopy(net).eval()))
    dummy = torch.zeros(1, 3, size, size)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def write_manifest(
    onnx_path: Path,
    size: int,
    *,
    description: str,
    classes: Sequence[str],
    score_threshold: float = 0.25,
) -> Path:
    lines = [
        f'name = "{onnx_path.stem}"',
        f'file = "{onnx_path.name}"',
        'type = "yolo"',
        'layout = "v8"',
        f"input_size = [{size}, {size}]  # width, height",
        f"classes = [{', '.join(repr(c).replace(chr(39), chr(34)) for c in classes)}]",
        f"score_threshold = {score_threshold}",
        "iou_threshold = 0.45",
        "max_detections = 100",
        f"description = {description!r}".replace("'", '"'),
    ]
    for name, (code, score) in VIOLATIONS.items():
        if name not in classes:
            continue
        lines += ["", f"[violations.{name}]", f'code = "{code}"', f"min_score = {score}"]
    path = onnx_path.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
