"""Configuration of the tiny-cats breed classifier (transformers ``PretrainedConfig``)."""

from __future__ import annotations

import math
import sys

from transformers import PretrainedConfig

from .labels import ID2LABEL, LABEL2ID

BACKBONES = ("efficientnet_lite0", "resnet18")


class TinyCatsConfig(PretrainedConfig):
    """Settings of :class:`TinyCatsForImageClassification`.

    Args:
        backbone: ``"efficientnet_lite0"`` (default; ImageNet-initialisable, 3.4M parameters) or
            ``"resnet18"`` (the seed's architecture, trained from scratch).
        num_channels: input channels (3 for RGB).
        image_size: the square input side the image processor produces.
        hidden_dropout_prob: dropout before the final linear layer.
        drop_connect_rate: stochastic-depth rate of the EfficientNet blocks (training only).
        temperature: the classifier's logits are divided by it (calibration, e.g. fitted on held-out
            data after training); 1 leaves them unchanged. The top class never changes; the
            pipeline's scores, the loss and exported ONNX models all see the calibrated logits.
        test_time_flip: in eval mode, average the logits of each image and its horizontal mirror
            image (twice the compute); training mode ignores it.

    Configs saved before ``temperature`` and ``test_time_flip`` existed load with 1.0 and False.
    """

    model_type = "tiny_cats"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        num_channels: int = 3,
        image_size: int = 224,
        hidden_dropout_prob: float = 0.2,
        drop_connect_rate: float = 0.1,
        temperature: float = 1.0,
        test_time_flip: bool = False,
        **kwargs,
    ):
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(ID2LABEL)
            kwargs["label2id"] = dict(LABEL2ID)
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.drop_connect_rate = drop_connect_rate
        # PretrainedConfig also knows a ``temperature``: a text-generation setting, here unused; this one is ours.
        self.temperature = float(temperature)
        self.test_time_flip = bool(test_time_flip)

    def _get_non_default_generation_parameters(self) -> dict:
        """transformers warns on save about non-default generation settings in a model config. Ours
        ``temperature`` is not one (the classifier does not generate), so it is left out of that check."""
        parent = getattr(super(), "_get_non_default_generation_parameters", None)
        found = dict(parent()) if parent is not None else {}
        found.pop("temperature", None)
        return found


# In a process that already runs Optimum's exporter (``optimum-cli export onnx --trust-remote-code``
# loads this file as remote code), register the ONNX export config of this model type.
if "optimum.exporters.tasks" in sys.modules:
    from .onnx_config_tiny_cats import register_onnx_config

    register_onnx_config()
