"""YOLOv8's training objective: task-aligned assignment, then BCE + CIoU + distribution focal loss.

The assigner picks, for each labelled box, the anchors whose predictions are already best aligned
with it (score^ALPHA x IoU^BETA among anchors inside the box, top TOPK), so the targets follow
what the network can learn rather than a fixed geometric rule. Soft class targets are the
normalised alignment, which ties each score to the quality of its box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.kitchen.net import REG_MAX, dfl_expectation, make_anchors

# Assigner constants from YOLOv8 (ultralytics TaskAlignedAssigner): 10 candidates per box, the
# score weighted by its square root and the IoU by its sixth power, so localisation dominates.
TOPK = 10
ALPHA = 0.5
BETA = 6.0
# Loss gains from YOLOv8's defaults (box 7.5, cls 0.5, dfl 1.5).
GAIN_BOX, GAIN_CLS, GAIN_DFL = 7.5, 0.5, 1.5
EPS = 1e-9


def box_iou_ciou(a: torch.Tensor, b: torch.Tensor, ciou: bool) -> torch.Tensor:
    """IoU (or CIoU) of xyxy boxes broadcast against each other."""
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    inter = (torch.min(ax2, bx2) - torch.max(ax1, bx1)).clamp(0) * (
        torch.min(ay2, by2) - torch.max(ay1, by1)
    ).clamp(0)
    wa, ha = ax2 - ax1, ay2 - ay1 + EPS
    wb, hb = bx2 - bx1, by2 - by1 + EPS
    union = wa * ha + wb * hb - inter + EPS
    iou = inter / union
    if not ciou:
        return iou
    cw = torch.max(ax2, bx2) - torch.min(ax1, bx1)
    ch = torch.max(ay2, by2) - torch.min(ay1, by1)
    c2 = cw**2 + ch**2 + EPS
    rho2 = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + EPS))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def assign(
    scores: torch.Tensor,  # (B, N, nc) sigmoid
    boxes: torch.Tensor,  # (B, N, 4) predicted xyxy pixels
    anchors: torch.Tensor,  # (N, 2) pixels
    gt_cls: torch.Tensor,  # (B, M) long
    gt_box: torch.Tensor,  # (B, M, 4) xyxy pixels
    gt_valid: torch.Tensor,  # (B, M) bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns foreground mask (B, N), target boxes (B, N, 4), soft target scores (B, N, nc)."""
    b, n, nc = scores.shape
    m = gt_box.shape[1]
    if m == 0:
        return (torch.zeros(b, n, dtype=torch.bool), torch.zeros(b, n, 4), torch.zeros(b, n, nc))
    lt = anchors[None, None] - gt_box[:, :, None, :2]
    rb = gt_box[:, :, None, 2:] - anchors[None, None]
    inside = torch.cat((lt, rb), -1).amin(-1) > EPS  # (B, M, N)
    candidate = inside & gt_valid[..., None]
    overlaps = box_iou_ciou(gt_box[:, :, None, :], boxes[:, None, :, :], ciou=False).clamp(0)
    overlaps = overlaps * candidate
    cls_scores = scores.gather(2, gt_cls[:, None, :].expand(b, n, m).clamp(0, nc - 1)).permute(0, 2, 1)
    align = cls_scores.pow(ALPHA) * overlaps.pow(BETA) * candidate
    k = min(TOPK, n)
    top = align.topk(k, dim=-1).indices  # (B, M, k)
    chosen = torch.zeros_like(candidate).scatter_(-1, top, True) & candidate
    # An anchor claimed by several boxes goes to the one it overlaps most.
    multi = chosen.sum(1, keepdim=True) > 1
    if multi.any():
        best = overlaps.argmax(1, keepdim=True)
        only_best = torch.zeros_like(chosen).scatter_(1, best, True)
        chosen = torch.where(multi, only_best & candidate, chosen)
    fg = chosen.any(1)  # (B, N)
    gt_index = chosen.float().argmax(1)  # (B, N)
    target_box = gt_box.gather(1, gt_index[..., None].expand(b, n, 4))
    target_cls = gt_cls.gather(1, gt_index)
    align = align * chosen
    max_align = align.amax(-1, keepdim=True)
    max_iou = (overlaps * chosen).amax(-1, keepdim=True)
    norm = (align * max_iou / (max_align + EPS)).amax(1)  # (B, N)
    target_scores = F.one_hot(target_cls.clamp(0, nc - 1), nc).float() * (norm * fg)[..., None]
    return fg, target_box, target_scores


class DetectionLoss:
    def __init__(self, num_classes: int) -> None:
        self.nc = num_classes

    def __call__(
        self,
        feats: list[torch.Tensor],
        gt_cls: torch.Tensor,
        gt_box: torch.Tensor,
        gt_valid: torch.Tensor,
        labelled: torch.Tensor,  # (B, nc): 1 where the image's source labels that class
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = feats[0].shape[0]
        flat = torch.cat([f.flatten(2) for f in feats], 2).permute(0, 2, 1)
        box_logits, cls_logits = flat[..., : 4 * REG_MAX], flat[..., 4 * REG_MAX :]
        anchors, strides = make_anchors(feats)
        dist = dfl_expectation(box_logits)  # stride units
        pred_box = torch.cat((anchors - dist[..., :2], anchors + dist[..., 2:]), -1) * strides
        anchor_px = anchors * strides

        fg, target_box, target_scores = assign(
            cls_logits.detach().sigmoid(), pred_box.detach(), anchor_px, gt_cls, gt_box, gt_valid
        )
        target_sum = max(target_scores.sum().item(), 1.0)

        bce = F.binary_cross_entropy_with_logits(cls_logits, target_scores, reduction="none")
        loss_cls = (bce * labelled[:, None, :]).sum() / target_sum

        if fg.any():
            weight = target_scores.sum(-1)[fg]
            iou = box_iou_ciou(pred_box[fg], target_box[fg], ciou=True)
            loss_box = ((1.0 - iou) * weight).sum() / target_sum
            # DFL: the two bins either side of each true distance, weighted by nearness.
            target_dist = torch.cat(
                (
                    anchors[None].expand(b, -1, -1) - target_box[..., :2] / strides,
                    target_box[..., 2:] / strides - anchors[None].expand(b, -1, -1),
                ),
                -1,
            )[fg].clamp(0, REG_MAX - 1 - 0.01)
            logits = box_logits[fg].view(-1, REG_MAX)
            left = target_dist.long().view(-1)
            w_right = target_dist.view(-1) - left
            dfl = (
                (
                    F.cross_entropy(logits, left, reduction="none") * (1 - w_right)
                    + F.cross_entropy(logits, left + 1, reduction="none") * w_right
                )
                .view(-1, 4)
                .mean(-1)
            )
            loss_dfl = (dfl * weight).sum() / target_sum
        else:
            loss_box = loss_dfl = flat.sum() * 0.0
        parts = torch.stack((loss_box * GAIN_BOX, loss_cls * GAIN_CLS, loss_dfl * GAIN_DFL))
        return parts.sum() * b, parts.detach()
