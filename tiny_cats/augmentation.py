"""Training augmentation on batches, with kornia (no torchvision in this stack).

Images in [0, 1], shape (N, 3, H, W), on the accelerator; random draws come from torch's global
generator, which the training loops seed per micro-batch (exact resume).

- ``basic``: the seed's recipe: horizontal flip, rotation up to 15 degrees, colour jitter 0.2,
  affine translation 0.1 and scale 0.9-1.1. Rotation, translation and scale are drawn into one
  ``RandomAffine`` so each image is resampled once, not twice.
- ``advanced``: random-resized crop (35-100% of the area), flip, TrivialAugment (one random
  photometric or geometric op per image) and random erasing: the usual strong recipe for long runs.
- ``randaugment``: the same with RandAugment (2 random ops at magnitude 9 of 30, torchvision's
  default) in place of TrivialAugment.
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn

AUGMENTATIONS = ("basic", "advanced", "randaugment")


def build_augmentation(rotation: float = 15.0, translate: float = 0.1, scale=(0.9, 1.1), jitter: float = 0.2) -> nn.Module:
    """The ``basic`` batch augmentation; call it on training batches only."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=rotation, translate=(translate, translate), scale=scale, padding_mode="reflection", p=1.0),
        K.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=0.0, p=0.8),
    )


def build_train_augmentation(kind: str, size: int) -> nn.Module:
    """The classifier's training augmentation ``kind`` (see the module docstring) for ``size`` x ``size`` images."""
    if kind == "basic":
        return build_augmentation()
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not {kind!r}")
    policy = K.auto.TrivialAugment() if kind == "advanced" else K.auto.RandAugment(n=2, m=9)
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.35, 1.0)),
        K.RandomHorizontalFlip(),
        policy,
        K.RandomErasing(p=0.25, scale=(0.02, 0.2)),
    )
