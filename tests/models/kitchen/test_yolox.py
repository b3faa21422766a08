"""The YOLOX-Nano pretrained start: the PyTorch backbone + neck computes what the ONNX export
computes (so every copied weight is in its place), the detector exports in the service's layout,
and a wrong file is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="needs the `train` extra (the test command installs it)")
onnx = pytest.importorskip("onnx", reason="needs the `train` extra (the test command installs it)")

from models.kitchen.export import export_onnx  # noqa: E402
from models.kitchen.yolox import PretrainedKitchenNet, YoloxNanoNeck, load_yolox_onnx  # noqa: E402

# The repository's copy of ../shared/pretrained/yolox_nano.onnx (same SHA-256): no skip anywhere.
PRETRAINED = Path(__file__).resolve().parents[3] / "models" / "yolox-nano-coco.onnx"
PHOTO = Path(__file__).resolve().parents[3] / "simulators" / "photos" / "mask-180.jpg"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def needs_pretrained() -> Path:
    assert PRETRAINED.is_file(), f"{PRETRAINED} is part of the repository"
    return PRETRAINED


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """YOLOX's own letterbox: scaled into the top-left corner, padded with 114."""
    h, w = image.shape[:2]
    r = size / max(h, w)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas


def test_the_backbone_and_neck_match_the_onnx_export_on_a_real_photo() -> None:
    path = needs_pretrained()
    neck = YoloxNanoNeck().eval()
    names = load_yolox_onnx(neck, path)
    bgr = letterbox(cv2.imread(str(PHOTO), cv2.IMREAD_COLOR), 416)

    model = onnx.load(str(path))
    model.graph.output.extend([onnx.ValueInfoProto(name=n) for n in names])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    # The export's convention: BGR, 0..255.
    expected = session.run(names, {"images": bgr.transpose(2, 0, 1)[None].astype(np.float32)})

    # Ours: RGB, 0..1 (the conversion is folded into the stem's weights).
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))[None].float() / 255
    with torch.no_grad():
        got = [t.numpy() for t in neck(rgb)]
    for want, have, channels, stride in zip(expected, got, (64, 128, 256), (8, 16, 32), strict=True):
        assert have.shape == want.shape == (1, channels, 416 // stride, 416 // stride)
        assert np.abs(want).max() > 1.0  # a real activation, not a degenerate all-zero map
        # Float32 rounding across ~80 layers stays near 2e-4; one misplaced weight is far above.
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-3)


@pytest.mark.parametrize(("size", "anchors"), [(416, 52 * 52 + 26 * 26 + 13 * 13), (384, 3024)])
def test_the_pretrained_detector_exports_in_the_v8_layout(tmp_path: Path, size: int, anchors: int) -> None:
    net = PretrainedKitchenNet(6)
    with torch.no_grad():
        feats = net(torch.zeros(1, 3, size, size))  # the raw maps the loss reads
    assert [tuple(f.shape) for f in feats] == [(1, 64 + 6, size // s, size // s) for s in (8, 16, 32)]
    export_onnx(net, tmp_path / "m.onnx", size)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    assert out.shape == (1, 4 + 6, anchors)


def test_a_wrong_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_yolox_onnx(YoloxNanoNeck(), tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        load_yolox_onnx(YoloxNanoNeck(), junk)
    # A valid ONNX model that is some other network (one convolution).
    weight = onnx.numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "other",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 8, 8])],
        [weight],
    )
    other = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph), str(other))
    with pytest.raises(ValueError, match=r"1 Conv nodes.*not a YOLOX-Nano export"):
        load_yolox_onnx(YoloxNanoNeck(), other)


def test_a_shape_mismatch_names_the_node_and_both_shapes() -> None:
    path = needs_pretrained()
    neck = YoloxNanoNeck()
    # A 3x3 where the export has a 1x1: the forward still runs, the copy must not.
    neck.dark2[0].pconv.conv = torch.nn.Conv2d(16, 32, 3, padding=1)
    with pytest.raises(ValueError, match=r"Conv node 2 \(Conv_47\).*\(32, 16, 1, 1\).*\(32, 16, 3, 3\)"):
        load_yolox_onnx(neck, path)
