"""Training augmentation on batches, with kornia (no torchvision in this stack).

The seed's recipe: horizontal flip, rotation up to 15 degrees, colour jitter 0.2, affine
translation 0.1 and scale 0.9-1.1. Rotation, translation and scale are drawn into one
``RandomAffine`` so each image is resampled once, not twice.
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def build_augmentation(rotation: float = 15.0, translate: float = 0.1, scale=(0.9, 1.1), jitter: float = 0.2) -> nn.Module:
    """Batch augmentation for images in [0, 1] of shape (N, 3, H, W); call it on training batches only."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=rotation, translate=(translate, translate), scale=scale, padding_mode="reflection", p=1.0),
        K.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=0.0, p=0.8),
    )
