"""A compact single-stage detector with the YOLOv8 output layout.

The structure follows YOLOv8 (CSP "C2f" blocks, SPPF, a PAN neck, a decoupled anchor-free head
with distribution focal loss bins) because its exported output, `(B, 4 + nc, N)` with boxes as
centre/size in input pixels and per-class sigmoid scores, is what the service's decoder
(`detectors.vision.backends.yolo.decode_yolo`, layout "v8") already reads. Nothing is
pretrained: every weight starts from PyTorch's default initialisation plus the class-bias prior
below, because no weights can be downloaded here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# DFL bins: each box side is predicted as a distribution over 0..REG_MAX-1 strides. 16 is
# YOLOv8's value; at a 416 input the largest stride (32) then covers boxes up to 15 x 32 = 480
# pixels from the anchor, more than the whole image.
REG_MAX = 16
STRIDES = (8, 16, 32)


class Conv(nn.Module):
    """Conv + BatchNorm + SiLU: the only layer type in the network besides concat/upsample."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions and n bottlenecks, every intermediate kept (YOLOv8)."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, c_out)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden)
        self.cv2 = Conv(hidden * 4, c_out)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class Head(nn.Module):
    """Decoupled head: per level, a box branch (4 x REG_MAX bins) and a class branch (nc logits)."""

    def __init__(self, num_classes: int, channels: tuple[int, int, int]) -> None:
        super().__init__()
        self.nc = num_classes
        box_c = max(16, channels[0] // 4, REG_MAX * 4)
        cls_c = max(channels[0], min(num_classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(Conv(c, box_c, 3), Conv(box_c, box_c, 3), nn.Conv2d(box_c, 4 * REG_MAX, 1))
            for c in channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(Conv(c, cls_c, 3), Conv(cls_c, cls_c, 3), nn.Conv2d(cls_c, num_classes, 1))
            for c in channels
        )
        self._init_biases()

    def _init_biases(self) -> None:
        for box, cls, stride in zip(self.box, self.cls, STRIDES, strict=True):
            assert isinstance(box, nn.Sequential) and isinstance(cls, nn.Sequential)
            last_box, last_cls = box[-1], cls[-1]
            assert isinstance(last_box, nn.Conv2d) and isinstance(last_cls, nn.Conv2d)
            assert last_box.bias is not None and last_cls.bias is not None
            nn.init.constant_(last_box.bias, 1.0)
            # Prior: about 5 objects per 640x640 image spread over the level's cells, so the
            # first steps are not swamped by the loss of confident negatives (YOLOv5/v8's prior).
            nn.init.constant_(last_cls.bias, math.log(5 / self.nc / (640 / stride) ** 2))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat((b(f), c(f)), 1) for f, b, c in zip(feats, self.box, self.cls, strict=True)]


class KitchenNet(nn.Module):
    """Backbone + PAN neck + head. `width` and `depth` scale the YOLOv8n shape (16..256 channels)."""

    def __init__(self, num_classes: int, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (max(8, int(c * width) // 8 * 8) for c in (16, 32, 64, 128, 256))

        def n(k: int) -> int:
            return max(1, round(k * depth))

        self.num_classes = num_classes
        self.stem = nn.Sequential(Conv(3, c1, 3, 2), Conv(c1, c2, 3, 2), C2f(c2, c2, n(1)))
        self.p3 = nn.Sequential(Conv(c2, c3, 3, 2), C2f(c3, c3, n(2)))
        self.p4 = nn.Sequential(Conv(c3, c4, 3, 2), C2f(c4, c4, n(2)))
        self.p5 = nn.Sequential(Conv(c4, c5, 3, 2), C2f(c5, c5, n(1)), SPPF(c5, c5))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top4 = C2f(c5 + c4, c4, n(1), shortcut=False)
        self.top3 = C2f(c4 + c3, c3, n(1), shortcut=False)
        self.down3 = Conv(c3, c3, 3, 2)
        self.bottom4 = C2f(c3 + c4, c4, n(1), shortcut=False)
        self.down4 = Conv(c4, c4, 3, 2)
        self.bottom5 = C2f(c4 + c5, c5, n(1), shortcut=False)
        self.head = Head(num_classes, (c3, c4, c5))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw per-level maps (B, 4*REG_MAX + nc, H, W), for the loss."""
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        t4 = self.top4(torch.cat((self.up(p5), p4), 1))
        t3 = self.top3(torch.cat((self.up(t4), p3), 1))
        b4 = self.bottom4(torch.cat((self.down3(t3), t4), 1))
        b5 = self.bottom5(torch.cat((self.down4(b4), p5), 1))
        return self.head([t3, b4, b5])


def make_anchors(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres (N, 2) in input pixels' stride units, and each cell's stride (N, 1)."""
    points, strides = [], []
    for f, stride in zip(feats, STRIDES, strict=True):
        h, w = f.shape[2:]
        sy, sx = torch.meshgrid(
            torch.arange(h, dtype=f.dtype) + 0.5, torch.arange(w, dtype=f.dtype) + 0.5, indexing="ij"
        )
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        strides.append(torch.full((h * w, 1), float(stride), dtype=f.dtype))
    return torch.cat(points), torch.cat(strides)


def dfl_expectation(box_logits: torch.Tensor) -> torch.Tensor:
    """(B, N, 4*REG_MAX) bin logits -> (B, N, 4) expected distances in stride units."""
    b, n, _ = box_logits.shape
    probs = box_logits.view(b, n, 4, REG_MAX).softmax(-1)
    bins = torch.arange(REG_MAX, dtype=probs.dtype, device=probs.device)
    return (probs * bins).sum(-1)


class ExportWrapper(nn.Module):
    """The deployed graph: letterboxed RGB 0..1 in, `(B, 4 + nc, N)` out, as YOLOv8 exports it."""

    def __init__(self, net: KitchenNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net(x)
        nc = self.net.num_classes
        flat = torch.cat([f.flatten(2) for f in feats], 2).permute(0, 2, 1)  # (B, N, 4R + nc)
        anchors, strides = make_anchors(feats)
        dist = dfl_expectation(flat[..., : 4 * REG_MAX])
        lt, rb = dist[..., :2], dist[..., 2:]
        centre = (anchors + (rb - lt) / 2) * strides
        size = (lt + rb) * strides
        scores = flat[..., 4 * REG_MAX : 4 * REG_MAX + nc].sigmoid()
        return torch.cat((centre, size, scores), -1).permute(0, 2, 1)
