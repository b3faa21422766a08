"""Static int8 quantization: QDQ with uint8 activations and int8 weights, still the same model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod

from detectors.vision.manifest import load_manifest
from models.kitchen.data import discover
from models.kitchen.quantize import quantize


def test_int8_variant_is_qdq_u8_activations_s8_weights_and_tracks_fp32(
    smoke_model: Path, smoke_data: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(smoke_model)
    out = tmp_path / "kitchen-int8.onnx"
    quantize(manifest, out, discover(smoke_data), CalibrationMethod.MinMax)

    graph = onnx.load(str(out)).graph
    initializers = {i.name: i for i in graph.initializer}
    quantize_ops = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantize_ops, "QDQ format: activations pass through QuantizeLinear/DequantizeLinear pairs"
    zero_points = [initializers[n.input[2]] for n in quantize_ops if n.input[2] in initializers]
    zero_point_types = {z.data_type for z in zero_points}
    assert zero_point_types == {onnx.TensorProto.UINT8}, "activations must be uint8"
    dequantized_from = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    conv_weights = [dequantized_from.get(n.input[1]) for n in graph.node if n.op_type == "Conv"]
    assert conv_weights and all(w in initializers for w in conv_weights), "every Conv weight is quantized"
    assert {initializers[w].data_type for w in conv_weights if w} == {onnx.TensorProto.INT8}

    x = np.random.default_rng(1).random((2, 3, 96, 96), dtype=np.float32)
    runs = []
    for path in (manifest.path, out):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runs.append(np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0]))
    assert runs[0].shape == runs[1].shape
    # Box coordinates (rows 0..3) are in pixels: int8 must keep them close to fp32's.
    assert np.corrcoef(runs[0][:, :4].ravel(), runs[1][:, :4].ravel())[0, 1] > 0.9
