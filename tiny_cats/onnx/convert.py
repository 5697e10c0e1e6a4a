"""One model to one fp32 ONNX file, through Optimum's exporter (``optimum.exporters.onnx.export``).

Each model has an ``OnnxConfig``: the classifier's is
:class:`~tiny_cats.classifier.onnx_config_tiny_cats.TinyCatsOnnxConfig` (it travels with the model's
remote code and is registered with ``TasksManager`` for ``optimum-cli``); the denoiser's,
``TinyDiTOnnxConfig``, is built here on first use, so that importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .parity import DENOISER_VELOCITY_ATOL
from .runtime import DENOISER_OUTPUT


def _tiny_dit_onnx_config_class():
    """Optimum classes for the denoiser (Optimum is imported here, not with this module)."""
    from optimum.exporters.onnx.config import VisionOnnxConfig
    from optimum.utils.input_generators import DummyInputGenerator
    from optimum.utils.normalized_config import NormalizedConfig

    class TinyDiTDummyInputGenerator(DummyInputGenerator):
        """Noisy images, flow-matching timesteps in [0, 1000] and class ids including the null label."""

        SUPPORTED_INPUT_NAMES = ("sample", "timestep", "class_labels")

        def __init__(self, task, normalized_config, batch_size: int = 2, **kwargs):
            self.task = task
            self.batch_size = batch_size
            self.size = normalized_config.image_size
            self.channels = normalized_config.num_channels
            self.num_labels = normalized_config.num_classes + 1

        def generate(self, input_name, framework="pt", int_dtype="int64", float_dtype="fp32"):
            if input_name == "sample":
                shape = [self.batch_size, self.channels, self.size, self.size]
                return self.random_float_tensor(shape, -1.0, 1.0, framework=framework, dtype=float_dtype)
            if input_name == "timestep":
                return self.random_float_tensor([self.batch_size], 0.0, 1000.0, framework=framework, dtype=float_dtype)
            return self.random_int_tensor([self.batch_size], self.num_labels, framework=framework, dtype=int_dtype)

    class TinyDiTOnnxConfig(VisionOnnxConfig):
        """``(sample, timestep, class_labels)`` -> ``out_sample`` (the velocity), dynamic batch.

        The spatial size is fixed at ``sample_size``: the position embedding is a constant of
        the grid size, computed in Python, so the traced graph holds it for one size only.
        """

        NORMALIZED_CONFIG_CLASS = NormalizedConfig.with_args(
            image_size="sample_size", num_channels="in_channels", num_classes="num_classes", allow_new=True
        )
        DUMMY_INPUT_GENERATOR_CLASSES = (TinyDiTDummyInputGenerator,)
        ATOL_FOR_VALIDATION = DENOISER_VELOCITY_ATOL

        @property
        def inputs(self):
            return {"sample": {0: "batch_size"}, "timestep": {0: "batch_size"}, "class_labels": {0: "batch_size"}}

        @property
        def outputs(self):
            return {DENOISER_OUTPUT: {0: "batch_size"}}

        @property
        def torch_to_onnx_output_map(self):
            return {"sample": DENOISER_OUTPUT}

    return TinyDiTOnnxConfig


def _optimum_export(model: torch.nn.Module, onnx_config, path: Path) -> None:
    """Optimum's low-level exporter, quietly (the model's input checks trip harmless tracer warnings)."""
    from optimum.exporters.onnx import export

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        export(model.eval(), onnx_config, path)


def register_onnx_config() -> None:
    """Register the classifier's ``OnnxConfig`` for model type ``tiny_cats`` with Optimum's ``TasksManager``.

    Done on first export rather than on import, so that importing this module does not pay for Optimum.
    """
    from ..classifier.onnx_config_tiny_cats import register_onnx_config as register

    if not register():
        raise ImportError('ONNX export needs optimum-onnx: pip install "tiny-cats[onnx]"')


def export_classifier_onnx(model, path: Path) -> None:
    """The classifier (a ``TinyCatsForImageClassification``) to one fp32 ONNX file."""
    from ..classifier.onnx_config_tiny_cats import TinyCatsOnnxConfig

    register_onnx_config()
    _optimum_export(model, TinyCatsOnnxConfig(model.config, task="image-classification"), path)


def export_denoiser_onnx(transformer, path: Path) -> None:
    """The generator's ``TinyDiTTransformer2DModel`` to one fp32 ONNX file."""
    onnx_config = _tiny_dit_onnx_config_class()(transformer.config, task="semantic-segmentation")
    _optimum_export(transformer, onnx_config, path)
