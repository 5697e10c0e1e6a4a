"""Optimum ONNX export configuration of the tiny-cats classifier (model type ``tiny_cats``).

Self-contained on purpose: ``configuration_tiny_cats.py`` imports this file, so
``save_pretrained`` copies it into every classifier folder. When ``optimum-cli export onnx
--trust-remote-code`` loads that folder's configuration as remote code, the configuration
registers :class:`TinyCatsOnnxConfig` here, which is how the plain Optimum CLI learns to export
a model type it does not ship.

Optimum is optional: without it this file defines nothing and registers nothing. The optimum
imports sit in a ``try`` block, which transformers' remote-code import check skips, so loading
the classifier as remote code never demands optimum.
"""

from __future__ import annotations

MODEL_TYPE = "tiny_cats"
TASKS = ("image-classification",)

try:
    from optimum.exporters.onnx.config import VisionOnnxConfig
    from optimum.exporters.tasks import TasksManager
    from optimum.utils.normalized_config import NormalizedVisionConfig

    class TinyCatsOnnxConfig(VisionOnnxConfig):
        """``pixel_values`` (batch, 3, image_size, image_size) -> ``logits`` (batch, num_labels).

        Only the batch axis is dynamic: the image processor always produces ``image_size``
        squares, and a fixed spatial size lets ONNX Runtime fold more of the graph.
        """

        NORMALIZED_CONFIG_CLASS = NormalizedVisionConfig
        ATOL_FOR_VALIDATION = 1e-3  # logits reach tens; same as tiny_cats.onnx_export.CLASSIFIER_LOGITS_ATOL

        @property
        def inputs(self):
            return {"pixel_values": {0: "batch_size"}}

        @property
        def outputs(self):
            return {"logits": {0: "batch_size"}}

except ImportError:  # optimum not installed: nothing to register
    TasksManager = None
    TinyCatsOnnxConfig = None


def register_onnx_config() -> bool:
    """Register :class:`TinyCatsOnnxConfig` with Optimum's ``TasksManager``; False without optimum.

    Idempotent: an existing registration (from this file or a remote-code copy) is kept.
    """
    if TinyCatsOnnxConfig is None:
        return False
    TasksManager.create_register("onnx")(MODEL_TYPE, *TASKS)(TinyCatsOnnxConfig)
    return True
