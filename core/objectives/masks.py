"""The mask head's loss and the reconstruction restricted to the person (masked edits, issue 15 §4).

Masks arrive as (float (B, 1, H, W) in [0, 1], bool (B,)): the data set's soft mask and which rows have one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTHING = 1.0


def mask_loss(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """BCE summed over pixels plus the Dice loss scaled to the same pixel count, batch-averaged over all rows (a
    row without a mask adds 0). BCE fits every pixel; Dice keeps a small person from being traded for background."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    p, t = torch.sigmoid(logits).flatten(1), target.flatten(1)
    dice = (2 * (p * t).sum(1) + DICE_SMOOTHING) / (p.sum(1) + t.sum(1) + DICE_SMOOTHING)
    per_image = bce + t.shape[1] * (1 - dice)
    return (per_image * known.to(per_image.dtype)).mean()


def person_target(logits: torch.Tensor, x: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """What to reconstruct when only the person counts: x on the person, the decoder's own (detached) drawing
    elsewhere, so background pixels give no gradient under every reconstruction term (under ssim-l1 those sharing a 7x7
    window with the person, up to 6 px away, still do); rows without a mask keep x."""
    weight = torch.where(known[:, None, None, None], target, torch.ones_like(target))
    return weight * x + (1 - weight) * torch.sigmoid(logits).detach()
