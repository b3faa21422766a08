"""YOLOX-Nano's COCO-pretrained backbone and neck under the kitchen detector's YOLOv8 head.

Why: the from-scratch `KitchenNet` has to learn edges and faces from a few thousand photos; the
YOLOX-Nano backbone (CSPDarknet, depthwise, width 0.25, depth 0.33) and its PAFPN neck already
saw COCO, persons included. The only copy of those weights here is an ONNX export
(Megvii YOLOX, Apache-2.0; export by Kazuhito00), so this module re-implements the network in
PyTorch exactly as that graph runs it and copies the graph's initializers in.

What the graph holds (opset 11, 369 nodes, 113 Conv): every BatchNorm is folded into its
convolution (conv weight + bias, no BatchNormalization node), each followed by SiLU written as
Sigmoid * Mul. So the layers here are plain Conv2d(bias=True) + SiLU. No identity BatchNorm is
added after them: in train mode a BatchNorm normalises by batch statistics, which would change
the pretrained function from the first step; fine-tuning conv + bias directly keeps it intact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from models.kitchen.net import Head, KitchenNet

NECK_CHANNELS = (64, 128, 256)  # strides 8, 16, 32


class BaseConv(nn.Module):
    """Conv (BatchNorm folded into weight + bias) then SiLU: YOLOX's BaseConv as exported."""

    def __init__(self, c_in: int, c_out: int, k: int, s: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, (k - 1) // 2, groups=groups, bias=True)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DWConv(nn.Module):
    """Depthwise k x k then pointwise 1 x 1, each with SiLU (YOLOX's depthwise=True variant)."""

    def __init__(self, c_in: int, c_out: int, k: int, s: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(c_in, c_in, k, s, groups=c_in)
        self.pconv = BaseConv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = BaseConv(c, c, 1)
        self.conv2 = DWConv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.add else y


class CSPLayer(nn.Module):
    """YOLOX's CSP block. The call order (conv1, conv2, bottlenecks, conv3) is the graph's order,
    which the loader relies on to pair convolutions with initializers."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.conv1 = BaseConv(c_in, hidden, 1)
        self.conv2 = BaseConv(c_in, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(x)
        return self.conv3(torch.cat((self.m(x1), x2), 1))


class SPPBottleneck(nn.Module):
    """1x1 conv, parallel max-pools 5/9/13 (not SPPF's cascade), concat, 1x1 conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in // 2
        self.conv1 = BaseConv(c_in, hidden, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13))
        self.conv2 = BaseConv(hidden * 4, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.pools)], 1))


class Focus(nn.Module):
    """Space-to-depth (top-left, bottom-left, top-right, bottom-right, as the graph's Slices and
    Concat order them) then a 3x3 conv over the 12 channels."""

    def __init__(self, c_out: int) -> None:
        super().__init__()
        self.conv = BaseConv(12, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(parts, 1))


class YoloxNanoNeck(nn.Module):
    """CSPDarknet (depthwise, width 0.25, depth 0.33) + YOLOPAFPN: RGB 0..1 in (once loaded),
    the three PAN outputs (64, 128, 256 channels at strides 8, 16, 32) out."""

    def __init__(self) -> None:
        super().__init__()
        c3, c4, c5 = NECK_CHANNELS
        self.stem = Focus(16)
        self.dark2 = nn.Sequential(DWConv(16, 32, 3, 2), CSPLayer(32, 32, 1))
        self.dark3 = nn.Sequential(DWConv(32, c3, 3, 2), CSPLayer(c3, c3, 3))
        self.dark4 = nn.Sequential(DWConv(c3, c4, 3, 2), CSPLayer(c4, c4, 3))
        self.dark5 = nn.Sequential(DWConv(c4, c5, 3, 2), SPPBottleneck(c5, c5), CSPLayer(c5, c5, 1, False))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, 1, False)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, 1, False)
        self.bu_conv2 = DWConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, 1, False)
        self.bu_conv1 = DWConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, 1, False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x2 = self.dark3(self.dark2(self.stem(x)))
        x1 = self.dark4(x2)
        x0 = self.dark5(x1)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat((self.up(fpn_out0), x1), 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat((self.up(fpn_out1), x2), 1))
        pan_out1 = self.C3_n3(torch.cat((self.bu_conv2(pan_out2), fpn_out1), 1))
        pan_out0 = self.C3_n4(torch.cat((self.bu_conv1(pan_out1), fpn_out0), 1))
        return [pan_out2, pan_out1, pan_out0]


class PretrainedKitchenNet(nn.Module):
    """YOLOX-Nano backbone + neck under `Head`: the same `num_classes` and raw per-level maps as
    `KitchenNet`, so `ExportWrapper`, the loss and the training loop take it unchanged."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.neck = YoloxNanoNeck()
        self.head = Head(num_classes, NECK_CHANNELS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.head(self.neck(x))


DetectorNet = KitchenNet | PretrainedKitchenNet


def _conv_order(neck: YoloxNanoNeck) -> list[nn.Conv2d]:
    """The neck's convolutions in call order (a dummy pass with hooks), which is the order a
    traced export writes its Conv nodes in; no name in the graph says which layer is which."""
    order: list[nn.Module] = []
    convs = [m for m in neck.modules() if isinstance(m, nn.Conv2d)]
    hooks = [c.register_forward_pre_hook(lambda mod, _: order.append(mod)) for c in convs]
    try:
        with torch.no_grad():
            neck(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    if len(order) != len(convs) or len({id(c) for c in order}) != len(convs):
        raise RuntimeError("every convolution of the neck must run exactly once per forward")
    return [c for c in order if isinstance(c, nn.Conv2d)]


def _ancestor_convs(graph: onnx.GraphProto, outputs: list[str]) -> set[str]:
    """Names of the Conv nodes the given tensors depend on: the backbone + neck region."""
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    convs: set[str] = set()
    pending = list(outputs)
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            convs.add(node.name)
        pending.extend(node.input)
    return convs


def load_yolox_onnx(neck: YoloxNanoNeck, onnx_path: Path) -> list[str]:
    """Copy the backbone + neck initializers of a YOLOX-Nano ONNX export into `neck`, then fold
    RGB 0..1 -> BGR 0..255 into the stem. Returns the graph's names of the three neck outputs.

    Pairing is by order: the k-th Conv node of the graph with the k-th convolution the PyTorch
    forward calls. Every pair must agree on weight/bias shapes, stride, padding and groups, each
    conv must feed a SiLU (Sigmoid, Mul), and the Convs the three neck outputs depend on must be
    exactly the paired ones, so no backbone/neck weight is left behind or taken from the head.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained YOLOX-Nano weights not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    convs = _conv_order(neck)
    if len(conv_nodes) <= len(convs):
        raise ValueError(
            f"{path}: {len(conv_nodes)} Conv nodes, but the YOLOX-Nano backbone + neck alone has "
            f"{len(convs)} (+ the head): not a YOLOX-Nano export"
        )
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    activations: list[str] = []
    copies: list[tuple[torch.Tensor, np.ndarray]] = []
    for k, (node, conv) in enumerate(zip(conv_nodes, convs, strict=False)):
        where = f"{path}: Conv node {k} ({node.name})"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if len(node.input) != 3 or any(name not in inits for name in node.input[1:]):
            raise ValueError(f"{where} has no constant weight and bias (BatchNorm not folded?)")
        weight, bias = (numpy_helper.to_array(inits[name]) for name in node.input[1:])
        want = (tuple(conv.weight.shape), (conv.out_channels,))
        if (weight.shape, bias.shape) != want:
            raise ValueError(f"{where}: weight/bias shapes {weight.shape}/{bias.shape}, expected {want}")
        geometry = [list(attrs.get(a, d)) for a, d in (("strides", [1, 1]), ("pads", [0] * 4))]
        pad = conv.padding if isinstance(conv.padding, tuple) else ()
        if geometry != [list(conv.stride), [*pad, *pad]] or attrs.get("group", 1) != conv.groups:
            raise ValueError(f"{where}: strides/pads/group {attrs} differ from the PyTorch layer")
        mul = [c for c in consumers.get(node.output[0], []) if c.op_type == "Mul"]
        if len(mul) != 1 or not any(c.op_type == "Sigmoid" for c in consumers[node.output[0]]):
            raise ValueError(f"{where} is not followed by SiLU (Sigmoid * Mul)")
        activations.append(mul[0].output[0])
        assert conv.bias is not None
        copies += [(conv.weight, weight), (conv.bias, bias)]

    # The three neck outputs are the activations of the last conv of C3_p3, C3_n3 and C3_n4.
    index = {id(c): i for i, c in enumerate(convs)}
    outputs = [activations[index[id(c.conv3.conv)]] for c in (neck.C3_p3, neck.C3_n3, neck.C3_n4)]
    region = _ancestor_convs(graph, outputs)
    paired = {n.name for n in conv_nodes[: len(convs)]}
    if region != paired:
        raise ValueError(
            f"{path}: the neck outputs depend on {len(region)} Conv nodes, {len(paired)} were paired "
            f"(unused: {sorted(region - paired)[:5]}, not backbone/neck: {sorted(paired - region)[:5]})"
        )
    with torch.no_grad():
        for param, value in copies:
            param.copy_(torch.from_numpy(value.copy()))
        # RGB 0..1 in, BGR 0..255 expected: the stem's 12 input channels are four space-to-depth
        # slices of (B, G, R); reverse each triple and scale by 255 so the graph pays nothing.
        stem = neck.stem.conv.conv
        flip = torch.tensor([g * 3 + c for g in range(4) for c in (2, 1, 0)])
        stem.weight.copy_(stem.weight[:, flip] * 255.0)
    return outputs


def build_net(
    init: str, num_classes: int, width: float, depth: float, pretrained: Path | None = None
) -> DetectorNet:
    """The detector for `--init`: `scratch` (KitchenNet at width/depth) or `yolox-nano` (the
    pretrained backbone + neck from `pretrained`, width/depth not used). Training builds through
    here so a resumed run, whose checkpoint records the init, builds the same network."""
    if init == "scratch":
        return KitchenNet(num_classes, width, depth)
    if init == "yolox-nano":
        if pretrained is None:
            raise ValueError("--init yolox-nano needs the path of yolox_nano.onnx")
        net = PretrainedKitchenNet(num_classes)
        load_yolox_onnx(net.neck, pretrained)
        return net
    raise ValueError(f"unknown init {init!r} (scratch or yolox-nano)")
