"""Pieces of the classifier's training recipe: mixup / CutMix with soft targets, layer-wise learning rates."""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F


def mix_batch(pixels: torch.Tensor, labels: torch.Tensor, num_classes: int, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019) of each image with another of the batch.

    Returns the mixed images and soft targets: the two one-hot labels weighted by each image's
    share (mixup: ``lam ~ Beta(alpha, alpha)``; CutMix: the area outside a random box of about
    ``1 - lam`` of the image, pasted from the partner). With both alphas > 0 each batch takes one
    of the two at random, as timm does. With both 0 the batch comes back unchanged, with its
    integer labels. Random draws come from torch's global generator (seeded per micro-batch).
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return pixels, labels
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or torch.rand(()).item() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = torch.distributions.Beta(alpha, alpha).sample().item()
    partner = torch.randperm(pixels.shape[0]).to(pixels.device)
    if use_cutmix:
        height, width = pixels.shape[-2:]
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        cy, cx = torch.randint(height, ()).item(), torch.randint(width, ()).item()
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        pixels = pixels.clone()
        pixels[..., top:bottom, left:right] = pixels[partner][..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)  # the box as clipped to the image
    else:
        pixels = lam * pixels + (1 - lam) * pixels[partner]
    one_hot = F.one_hot(labels, num_classes).float()
    return pixels, lam * one_hot + (1 - lam) * one_hot[partner]


def parameter_groups(model, head_lr: float, backbone_lr: float, layer_decay: float = 1.0) -> List[dict]:
    """Optimizer groups of a tiny-cats classifier: the classifier head at ``head_lr``, the backbone below it.

    With ``layer_decay`` = 1 the whole backbone learns at ``backbone_lr``. Below 1, the rate falls
    by that factor per stage from the backbone's top down (layer-wise decay, Clark et al., 2020;
    BEiT): EfficientNet-Lite0's 1x1 head convolution at ``backbone_lr``, its last stage at
    ``backbone_lr x layer_decay``, ... the stem lowest, at ``backbone_lr x layer_decay^8``. Early
    layers hold the generic features that pretraining got right; later ones need more change.
    """
    encoder = model.base_model.encoder
    in_encoder = {id(p) for p in encoder.parameters()}
    head = [p for p in model.parameters() if id(p) not in in_encoder]
    if layer_decay == 1.0:
        body = [p for p in model.parameters() if id(p) in in_encoder]
        return [{"params": body, "lr": backbone_lr}, {"params": head, "lr": head_lr}]
    layers = [[encoder.stem], *encoder.stage_blocks()]  # bottom to top; the rest (a head conv) above them
    depth_of = {id(p): i for i, modules in enumerate(layers) for m in modules for p in m.parameters()}
    top = len(layers)
    groups = {}
    for p in encoder.parameters():
        groups.setdefault(depth_of.get(id(p), top), []).append(p)
    body = [{"params": groups[d], "lr": backbone_lr * layer_decay ** (top - d)} for d in sorted(groups)]
    return body + [{"params": head, "lr": head_lr}]
