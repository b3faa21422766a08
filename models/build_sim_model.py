"""Build the camera simulator's marker model, and a stand-in model with realistic compute.

`python -m models.build_sim_model` regenerates `models/sim-markers.onnx` and its manifest,
deterministically, from the colours in `simulators/palette.py`.

**sim-markers** is a real ONNX graph in the YOLOv8 output layout, but not a learned model: it
splits its 320x320 letterboxed input into 8x8 cells and scores each cell against each marker
colour with a Gaussian kernel of the cell pixels' mean squared distance to that colour (so only
cells solidly filled with a marker score: a cell straddling an edge may have a mean colour near
another marker, but its pixels are not). Each cell's box is the score-weighted centroid of the
same class's cells in the 7x7 cells around it, sized from their spread; cells of one marker thus
agree on its box, and NMS keeps one. Its job is to let the whole pipeline (ingest, Kafka, the
vision service, alerts) run end to end on the simulator's cartoon kitchens before the trained
kitchen models ship.

**the compute model** (`build_compute_model`) has the shape and the arithmetic of a small real
detector (a stride-2 conv backbone with SiLU, heads at strides 8/16/32, 2100 candidates) with
seeded random weights. The benchmark builds it into a temporary directory to measure the vision
loop against a model whose inference costs what a real one does; it is never committed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from simulators import palette

CLASSES = ("without_mask", "cigarette", "rat")
CODES = {"without_mask": "KITCHEN_NO_MASK", "cigarette": "KITCHEN_SMOKING", "rat": "KITCHEN_RODENT"}
OPSET = 17
IR_VERSION = 8  # the IR that opset 17 came with: loadable by every onnxruntime Vigil supports

INPUT_SIZE = 320
CELL = 8  # cell size in input pixels: a 32 px marker at the 640 -> 320 letterbox covers a whole cell
GRID = INPUT_SIZE // CELL
# The Gaussian width: a cell at a marker colour scores 1.0, one at palette.MIN_DISTANCE (the
# closest any scene colour may come) scores this much, far under the score threshold.
SCORE_AT_MIN_DISTANCE = 0.03
SIGMA_SQ = palette.MIN_DISTANCE**2 / (2 * math.log(1 / SCORE_AT_MIN_DISTANCE))
# Cells scoring under this do not pull a box: the faint tail of every cell would otherwise drag
# centroids towards the window centre.
WEIGHT_FLOOR = 0.2
WINDOW = 7  # cells on a side of the centroid window (56 input px): wider than the largest marker
EPSILON = 1e-6  # keeps empty windows at the cell centre instead of 0/0

# Random-weight init of the compute stand-in. He init (gain sqrt 2) lets activations fade through
# SiLU layers until the heads output constants; 1.6 keeps them near unit scale through all ten
# convs, and the head gain spreads the class logits (about -6 +- 2) so a few candidates pass the
# threshold per image and the decode and NMS steps do realistic work.
CONV_GAIN = 1.6
HEAD_GAIN = 2.0
CLASS_LOGIT_BIAS = -6.0

SIM_SCORE_THRESHOLD = 0.35
SIM_MIN_SCORE = 0.5


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def _model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vigil.models.build_sim_model",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    # Ultralytics-style metadata, so generic tools show class names.
    helper.set_model_props(model, {"names": str(dict(enumerate(CLASSES)))})
    onnx.checker.check_model(model, full_check=True)
    return model


def _prototypes() -> np.ndarray:
    """Marker colours as the model sees them: RGB 0..1, shaped (nc, 3)."""
    bgr = np.array([palette.MARKERS[name] for name in CLASSES], dtype=np.float32)
    return np.ascontiguousarray(bgr[:, ::-1] / 255.0)


def _moment_kernels() -> np.ndarray:
    """(5 nc, 1, W, W) grouped conv weights: per class, the sums of w, w dx, w dy, w dx², w dy²
    over the window (offsets in input pixels)."""
    offsets = (np.arange(WINDOW, dtype=np.float32) - WINDOW // 2) * CELL
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    one_class = np.stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy])[:, None]
    return np.tile(one_class, (len(CLASSES), 1, 1, 1)).astype(np.float32)


def build_sim_model() -> onnx.ModelProto:
    """The colour-prototype detector for the simulator's scenes (see the module docstring)."""
    nc = len(CLASSES)
    protos = _prototypes()
    centres = np.arange(GRID, dtype=np.float32) * CELL + CELL / 2
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    inits = [
        # E||x - p||² = E||x||² - 2 p·E[x] + ||p||²: the middle and last terms as one 1x1 conv.
        _const("cross_w", (-2.0 * protos).reshape(nc, 3, 1, 1)),
        _const("cross_b", (protos * protos).sum(axis=1)),
        _const("neg_inv_two_sigma_sq", np.array(-1.0 / (2 * SIGMA_SQ), dtype=np.float32)),
        _const("axis1", np.array([1], dtype=np.int64)),
        _const("axis2", np.array([2], dtype=np.int64)),
        _const("weight_floor", np.array(WEIGHT_FLOOR, dtype=np.float32)),
        _const("moment_kernels", _moment_kernels()),
        _const("moment_shape", np.array([0, nc, 5, GRID, GRID], dtype=np.int64)),
        _const("split_122", np.array([1, 2, 2], dtype=np.int64)),
        _const("epsilon", np.array(EPSILON, dtype=np.float32)),
        _const("grid", np.stack([cx, cy])[None, None]),  # (1, 1, 2, G, G) cell centres, input px
        _const("twelve", np.array(12.0, dtype=np.float32)),  # a uniform extent L has variance L²/12
        _const("cell_var", np.array(CELL * CELL, dtype=np.float32)),  # each cell's own extent
        _const("cell", np.array(CELL, dtype=np.float32)),
        _const("score_shape", np.array([0, nc, GRID * GRID], dtype=np.int64)),
        _const("box_shape", np.array([0, 4, GRID * GRID], dtype=np.int64)),
    ]
    node = helper.make_node
    nodes = [
        # Per cell and marker, the MEAN squared distance of the cell's pixels to the marker colour
        # (not the distance of the mean colour): a cell that straddles an edge has a mean colour
        # that can land near another marker (ember + wall ≈ skin), but its pixels do not.
        node("Mul", ["images", "images"], ["px_sq"]),
        node("ReduceSum", ["px_sq", "axis1"], ["px_norm_sq"], keepdims=1),  # (B, 1, H, W)
        node(
            "AveragePool", ["px_norm_sq"], ["cell_norm_sq"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]
        ),
        node("AveragePool", ["images"], ["cell_mean"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        node("Conv", ["cell_mean", "cross_w", "cross_b"], ["cross"]),  # (B, nc, G, G)
        node("Add", ["cross", "cell_norm_sq"], ["dist_sq_raw"]),
        node("Relu", ["dist_sq_raw"], ["dist_sq"]),  # float rounding can dip under 0
        node("Mul", ["dist_sq", "neg_inv_two_sigma_sq"], ["exponent"]),
        node("Exp", ["exponent"], ["scores"]),
        # Boxes: per class, the centroid and spread of the confident cells in the window.
        node("Sub", ["scores", "weight_floor"], ["above_floor"]),
        node("Relu", ["above_floor"], ["weight"]),
        node("Conv", ["weight", "moment_kernels"], ["moments_flat"], pads=[WINDOW // 2] * 4, group=nc),
        node("Reshape", ["moments_flat", "moment_shape"], ["moments"]),  # (B, nc, 5, G, G)
        node("Split", ["moments", "split_122"], ["mass", "first", "second"], axis=2),
        node("Add", ["mass", "epsilon"], ["mass_e"]),
        node("Div", ["first", "mass_e"], ["mean_offset"]),  # (B, nc, 2, G, G) dx, dy
        node("Div", ["second", "mass_e"], ["mean_sq_offset"]),
        node("Add", ["grid", "mean_offset"], ["centre"]),
        node("Mul", ["mean_offset", "mean_offset"], ["offset_sq"]),
        node("Sub", ["mean_sq_offset", "offset_sq"], ["variance"]),
        node("Relu", ["variance"], ["variance_pos"]),
        node("Mul", ["variance_pos", "twelve"], ["extent_sq"]),
        node("Add", ["extent_sq", "cell_var"], ["span_sq"]),
        node("Sqrt", ["span_sq"], ["span"]),
        # Only whole cells score, and a marker's true edge lies anywhere within the next cell out:
        # half a cell more on each side is the unbiased guess.
        node("Add", ["span", "cell"], ["size"]),
        node("Concat", ["centre", "size"], ["class_boxes"], axis=2),  # (B, nc, 4, G, G)
        # One box per cell: the best class's (ties split evenly, which only happens far from
        # every marker, where no candidate passes the threshold anyway).
        node("ReduceMax", ["scores"], ["best"], axes=[1], keepdims=1),
        node("Equal", ["scores", "best"], ["is_best"]),
        node("Cast", ["is_best"], ["best_mask"], to=TensorProto.FLOAT),
        node("ReduceSum", ["best_mask", "axis1"], ["best_count"], keepdims=1),
        node("Div", ["best_mask", "best_count"], ["best_weight"]),
        node("Unsqueeze", ["best_weight", "axis2"], ["best_weight5"]),  # (B, nc, 1, G, G)
        node("Mul", ["class_boxes", "best_weight5"], ["weighted_boxes"]),
        node("ReduceSum", ["weighted_boxes", "axis1"], ["boxes"], keepdims=0),  # (B, 4, G, G)
        node("Reshape", ["boxes", "box_shape"], ["boxes_flat"]),
        node("Reshape", ["scores", "score_shape"], ["scores_flat"]),
        node("Concat", ["boxes_flat", "scores_flat"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "sim_markers",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, GRID * GRID])],
        inits,
    )
    return _model(graph, "Colour-prototype marker detector for the Vigil camera simulator (not learned).")


# --- the compute stand-in ---------------------------------------------------------------------------


def build_compute_model(
    path: str | Path, input_size: int = INPUT_SIZE, width: int = 16, seed: int = 0
) -> Path:
    """Write a YOLOv8-layout model with the compute of a small real detector to `path`, and its
    manifest next to it (same stem, .toml); returns the manifest path, ready for load_manifest.

    Backbone: per stage a stride-2 3x3 conv then a 3x3 conv, SiLU after each, channels
    width x (1, 2, 4, 8, 16); 1x1 heads on the stride 8/16/32 maps, boxes decoded in the graph
    as exported YOLOv8 models do. 0.85 GFLOPs per 320x320 image at width 16. Seeded random
    weights (see CONV_GAIN): a handful of candidates per frame pass the threshold.
    """
    if input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32 (the deepest stride), got {input_size}")
    rng = np.random.default_rng(seed)
    nc = len(CLASSES)
    node = helper.make_node
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(x: str, c_in: int, c_out: int, stride: int, name: str) -> str:
        w = rng.normal(0.0, CONV_GAIN / math.sqrt(9 * c_in), (c_out, c_in, 3, 3)).astype(np.float32)
        inits.extend([_const(f"{name}.w", w), _const(f"{name}.b", np.zeros(c_out, np.float32))])
        nodes.append(
            node(
                "Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.c"], pads=[1, 1, 1, 1], strides=[stride] * 2
            )
        )
        nodes.append(node("Sigmoid", [f"{name}.c"], [f"{name}.s"]))
        nodes.append(node("Mul", [f"{name}.c", f"{name}.s"], [name]))  # SiLU
        return name

    x, c_in, features = "images", 3, {}
    for stage in range(5):
        c_out = width * 2**stage
        x = conv(x, c_in, c_out, 2, f"stage{stage}.down")
        x = conv(x, c_out, c_out, 1, f"stage{stage}.conv")
        features[2 ** (stage + 1)] = (x, c_out)
        c_in = c_out

    flats = []
    for stride in (8, 16, 32):
        feature, channels = features[stride]
        side = input_size // stride
        name = f"head{stride}"
        w = rng.normal(0.0, HEAD_GAIN / math.sqrt(channels), (4 + nc, channels, 1, 1)).astype(np.float32)
        b = np.concatenate([np.zeros(4), np.full(nc, CLASS_LOGIT_BIAS)]).astype(np.float32)
        # Boxes: cx, cy within a stride of the cell centre, w and h up to 8 strides.
        centres = np.arange(side, dtype=np.float32) * stride + stride / 2
        gy, gx = np.meshgrid(centres, centres, indexing="ij")
        scale = np.ones((1, 4 + nc, side, side), np.float32)
        scale[0, :2], scale[0, 2:4] = 2 * stride, 8 * stride
        offset = np.zeros((1, 4 + nc, side, side), np.float32)
        offset[0, 0], offset[0, 1] = gx - stride, gy - stride
        inits += [
            _const(f"{name}.w", w),
            _const(f"{name}.b", b),
            _const(f"{name}.scale", scale),
            _const(f"{name}.offset", offset),
            _const(f"{name}.shape", np.array([0, 4 + nc, side * side], np.int64)),
        ]
        nodes += [
            node("Conv", [feature, f"{name}.w", f"{name}.b"], [f"{name}.logits"]),
            node("Sigmoid", [f"{name}.logits"], [f"{name}.p"]),
            node("Mul", [f"{name}.p", f"{name}.scale"], [f"{name}.scaled"]),
            node("Add", [f"{name}.scaled", f"{name}.offset"], [f"{name}.out"]),
            node("Reshape", [f"{name}.out", f"{name}.shape"], [f"{name}.flat"]),
        ]
        flats.append(f"{name}.flat")
    nodes.append(node("Concat", flats, ["output0"], axis=2))
    candidates = sum((input_size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes,
        "compute_standin",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, input_size, input_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, candidates])],
        inits,
    )
    model = _model(graph, "Random-weight detector with the compute of a small YOLO, for benchmarks.")
    out = Path(path)
    out.write_bytes(model.SerializeToString())
    return write_compute_manifest(out, input_size)


# --- manifests --------------------------------------------------------------------------------------


def manifest_text(name: str, file: str, description: str, input_size: int = INPUT_SIZE) -> str:
    """A manifest for a model with the simulator's three classes (see detectors.vision.manifest)."""
    classes = ", ".join(f'"{c}"' for c in CLASSES)
    lines = [
        f'name = "{name}"',
        f'file = "{file}"',
        'type = "yolo"',
        'layout = "v8"',
        f"input_size = [{input_size}, {input_size}]  # width, height",
        f"classes = [{classes}]",
        f"score_threshold = {SIM_SCORE_THRESHOLD}",
        "iou_threshold = 0.45",
        "max_detections = 100",
        f"description = {_toml_string(description)}",
    ]
    for cls in CLASSES:
        lines += ["", f"[violations.{cls}]", f'code = "{CODES[cls]}"', f"min_score = {SIM_MIN_SCORE}"]
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


SIM_DESCRIPTION = (
    "A colour-prototype detector for the camera simulator's cartoon scenes, not a learned model: "
    "it scores each 8x8 cell of the letterboxed input by the distance of its mean colour to the "
    "marker colours of simulators/palette.py. For plumbing tests and the demo until trained "
    "kitchen models ship; it knows nothing about real kitchens."
)
COMPUTE_DESCRIPTION = (
    "Random weights with the compute of a small YOLO detector (benchmark stand-in); "
    "its detections mean nothing."
)


def write_sim_model(directory: str | Path | None = None) -> Path:
    """Write sim-markers.onnx and sim-markers.toml; returns the manifest path."""
    out = Path(directory) if directory is not None else Path(__file__).resolve().parent
    (out / "sim-markers.onnx").write_bytes(build_sim_model().SerializeToString())
    manifest = out / "sim-markers.toml"
    manifest.write_text(manifest_text("sim-markers", "sim-markers.onnx", SIM_DESCRIPTION), encoding="utf-8")
    return manifest


def write_compute_manifest(model_path: str | Path, input_size: int = INPUT_SIZE) -> Path:
    """Write `<model>.toml` next to a model from `build_compute_model`; returns its path."""
    model = Path(model_path)
    manifest = model.with_suffix(".toml")
    text = manifest_text(model.stem, model.name, COMPUTE_DESCRIPTION, input_size)
    manifest.write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=None, help="directory (default: the models package)")
    parser.add_argument(
        "--compute", type=Path, default=None, help="also write the compute stand-in here (.onnx)"
    )
    args = parser.parse_args(argv)
    print(f"wrote {write_sim_model(args.out)}")
    if args.compute is not None:
        print(f"wrote {args.compute} and {build_compute_model(args.compute)}")


if __name__ == "__main__":
    main()
