"""Configuration of the tiny-cats breed classifier (transformers ``PretrainedConfig``)."""

from __future__ import annotations

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
    """

    model_type = "tiny_cats"

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        num_channels: int = 3,
        image_size: int = 224,
        hidden_dropout_prob: float = 0.2,
        drop_connect_rate: float = 0.1,
        **kwargs,
    ):
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(ID2LABEL)
            kwargs["label2id"] = dict(LABEL2ID)
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.drop_connect_rate = drop_connect_rate


# In a process that already runs Optimum's exporter (``optimum-cli export onnx --trust-remote-code``
# loads this file as remote code), register the ONNX export config of this model type.
if "optimum.exporters.tasks" in sys.modules:
    from .onnx_config_tiny_cats import register_onnx_config

    register_onnx_config()
