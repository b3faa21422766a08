"""Static int8 quantization of a YOLO ONNX model: QDQ format, uint8 activations, int8 weights.

Why this scheme: on x86 CPUs without VNNI for signed inputs, onnxruntime's int8 kernels want
unsigned activations (u8 x s8 is the fast VPMADDUBSW path); signed activations fall back to
slower kernels and were about 2x slower than fp32 here, while u8/s8 QDQ was faster than fp32.
Weights are quantized per output channel (small convolutions of a from-scratch model have very
different ranges per channel). Calibration uses real photos from the training split, never the
held-out ones, letterboxed exactly like the service does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from detectors.vision.backends.yolo import YoloOnnxBackend
from detectors.vision.manifest import ModelManifest
from models.kitchen.data import Sample

CALIBRATION_IMAGES = 200  # beyond ~100-200 images the activation ranges stop moving


class _PhotoReader(CalibrationDataReader):  # type: ignore[misc]
    """Calibration batches made by the service's own `prepare` (letterbox, RGB, 0..1, NCHW), so the
    activation ranges are measured on exactly what the model will see in production."""

    def __init__(self, samples: Sequence[Sample], manifest: ModelManifest, input_name: str) -> None:
        self._iter = self._batches(samples, manifest, input_name)

    @staticmethod
    def _batches(
        samples: Sequence[Sample], manifest: ModelManifest, input_name: str
    ) -> Iterator[dict[str, np.ndarray]]:
        backend = YoloOnnxBackend(manifest, max_batch=1)
        try:
            for sample in samples:
                image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
                if image is None:
                    continue
                # A copy: the backend reuses its input buffers on the next call.
                yield {input_name: backend.prepare([image]).tensor.copy()}
        finally:
            backend.close()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def decode_nodes(model: onnx.ModelProto, *, head_convs: bool = False) -> list[str]:
    """The nodes after the last convolutions: DFL softmax, anchor arithmetic, sigmoid, the final
    concat. They stay fp32: the output row holds box coordinates in pixels (0..input size) beside
    class scores (0..1), and one uint8 scale for both rounds every score to zero. `head_convs`:
    the last convolutions themselves too (the head's box and class outputs), whose int8 rounding
    costs a detector the most accuracy for the least time."""
    producer = {out: node for node in model.graph.node for out in node.output}
    excluded: list[str] = []
    seen: set[str] = set()
    pending = [o.name for o in model.graph.output]
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            if head_convs:
                excluded.append(node.name)
            continue
        excluded.append(node.name)
        pending.extend(node.input)
    return excluded


def quantize(
    manifest: ModelManifest,
    out: Path,
    calibration: Sequence[Sample],
    method: CalibrationMethod = CalibrationMethod.Percentile,
    *,
    head_fp32: bool = False,
) -> None:
    fp32 = manifest.path
    input_name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
        keep_fp32 = decode_nodes(onnx.load(str(prepped)), head_convs=head_fp32)
        quantize_static(
            str(prepped),
            str(out),
            _PhotoReader(calibration, manifest, input_name),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep_fp32,
            # Percentile clipping ignores the rare extreme activations that MinMax would stretch
            # the uint8 range for, at the cost of clipping those few values.
            calibrate_method=method,
            extra_options={"CalibPercentile": 99.99} if method == CalibrationMethod.Percentile else {},
        )


def time_session(path: Path, size: int, batch: int, seconds: float = 5.0) -> float:
    """Images per second of a bare onnxruntime session (the raw limit), one batch shape."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
    for _ in range(3):
        session.run(None, {name: x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        session.run(None, {name: x})
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    from detectors.vision.manifest import find_manifest, load_manifest
    from models.cli import default_data
    from models.kitchen.data import discover, sets_for, split

    p = argparse.ArgumentParser(prog="python -m models.kitchen.quantize", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="kitchen", help="manifest name or path of the fp32 model")
    p.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--method",
        choices=("percentile", "minmax", "entropy"),
        default="percentile",
        help="how activation ranges are calibrated (percentile clips the rare outliers)",
    )
    p.add_argument(
        "--head-fp32",
        action="store_true",
        help="keep the head's last convolutions (box and class outputs) in fp32 too",
    )
    args = p.parse_args(argv)
    manifest = load_manifest(find_manifest(args.model))
    train, _ = split(discover(args.data or default_data(), sets=sets_for(manifest.classes)), args.seed)
    calibration = train[:: max(1, len(train) // CALIBRATION_IMAGES)][:CALIBRATION_IMAGES]
    out = manifest.path.with_name(f"{manifest.name}-int8.onnx")
    methods = {
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
    }
    quantize(manifest, out, calibration, methods[args.method], head_fp32=args.head_fp32)
    text = manifest.manifest_path.read_text(encoding="utf-8")
    text = text.replace(f'name = "{manifest.name}"', f'name = "{manifest.name}-int8"', 1)
    text = text.replace(f'file = "{manifest.path.name}"', f'file = "{out.name}"', 1)
    int8_manifest = out.with_suffix(".toml")
    int8_manifest.write_text(text, encoding="utf-8")
    shutil.copymode(manifest.manifest_path, int8_manifest)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {int8_manifest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
