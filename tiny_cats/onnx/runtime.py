"""Run the exported tiny-cats ONNX files with ONNX Runtime, from Python.

- :func:`load_onnx_classifier` / :func:`onnx_image_classifier`: the classifier as Optimum's
  ``ORTModelForImageClassification``, alone or inside ``transformers.pipeline``.
- :class:`OnnxTinyDiTTransformer`: the exported denoiser behind the interface
  :class:`~tiny_cats.generator.pipeline_tiny_dit.TinyDiTPipeline` uses, so the unchanged pipeline
  (guidance, scheduler, seeding) samples with ONNX Runtime.
- :func:`load_onnx_generator`: that pipeline built from ``onnx/manifest.json`` alone, the way
  the browser app builds its own.
- :func:`ort_session`: the one place an ``onnxruntime.InferenceSession`` is made (CPU, thread cap).

Paths come from :mod:`tiny_cats.layout`; ``package_dir`` is a model package root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..layout import CLASSIFIER_ONNX, CLASSIFIER_ONNX_INT8, GENERATOR_ONNX, GENERATOR_ONNX_INT8
from .manifest import read_manifest

PathLike = Union[str, os.PathLike]
# ONNX output name of the denoiser: ONNX forbids an output named like the input "sample".
DENOISER_OUTPUT = "out_sample"


def session_options(num_threads: Optional[int] = None):
    """ORT session options; ``num_threads`` (default: ``$OMP_NUM_THREADS`` if set) caps intra-op threads.

    ONNX Runtime ignores ``OMP_NUM_THREADS`` by itself; honouring it keeps ORT as polite as torch
    on a shared machine.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's graph-cleanup notices are not actionable
    threads = num_threads if num_threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def ort_session(path: PathLike, num_threads: Optional[int] = None):
    """A CPU ``onnxruntime.InferenceSession`` for one ONNX file."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(num_threads), providers=["CPUExecutionProvider"])


def load_onnx_classifier(
    package_dir: PathLike,
    quantized: bool = False,
    config_dir: Optional[PathLike] = None,
    num_threads: Optional[int] = None,
):
    """``ORTModelForImageClassification`` over ``onnx/model.onnx`` (or ``model_quantized.onnx``).

    The config (labels) comes from ``config_dir``, default the package root, where the Hub
    layout keeps the classifier's ``config.json``. The model is built from its session rather
    than with ``from_pretrained``, which insists on a ``config.json`` beside the ONNX folder.
    """
    from optimum.onnxruntime import ORTModelForImageClassification

    from .. import TinyCatsConfig

    config = TinyCatsConfig.from_pretrained(config_dir or package_dir)
    session = ort_session(Path(package_dir) / (CLASSIFIER_ONNX_INT8 if quantized else CLASSIFIER_ONNX), num_threads)
    return ORTModelForImageClassification(config=config, session=session)


def onnx_image_classifier(
    package_dir: PathLike,
    quantized: bool = False,
    config_dir: Optional[PathLike] = None,
    num_threads: Optional[int] = None,
):
    """``transformers.pipeline("image-classification")`` running the ONNX classifier."""
    import transformers

    from .. import TinyCatsImageProcessor

    model = load_onnx_classifier(package_dir, quantized, config_dir, num_threads)
    processor = TinyCatsImageProcessor.from_pretrained(config_dir or package_dir)
    return transformers.pipeline("image-classification", model=model, image_processor=processor)


class OnnxTinyDiTTransformer:
    """The exported TinyDiT denoiser, callable like ``TinyDiTTransformer2DModel``.

    Deliberately not a ``torch.nn.Module``: ``DiffusionPipeline`` then treats it as a plain
    component (``device`` and ``_execution_device`` fall back to CPU, ``.to()`` and offload
    hooks skip it, ``maybe_free_model_hooks`` is a no-op), which is exactly right for a
    session that lives in ONNX Runtime. ``register_modules`` records its module and class name.

    Args:
        session: an ``onnxruntime.InferenceSession`` of ``onnx/transformer.onnx``.
        config: the transformer's config (``sample_size``, ``in_channels``, ``num_classes``...).
    """

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, session, config: dict):
        from diffusers.configuration_utils import FrozenDict

        self.session = session
        self.config = FrozenDict(config)
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def from_file(cls, path: PathLike, config: dict, num_threads: Optional[int] = None) -> "OnnxTinyDiTTransformer":
        return cls(ort_session(path, num_threads), config)

    @property
    def null_class_id(self) -> int:
        return self.config.num_classes

    def __call__(self, sample: torch.Tensor, timestep, class_labels: torch.Tensor, return_dict: bool = True):
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        batch = sample.shape[0]
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch)
        feeds = {
            "sample": sample.detach().cpu().float().numpy(),
            "timestep": np.ascontiguousarray(timestep.detach().cpu().numpy()),
            "class_labels": torch.as_tensor(class_labels).detach().cpu().long().numpy(),
        }
        (velocity,) = self.session.run([DENOISER_OUTPUT], {k: feeds[k] for k in self.input_names})
        velocity = torch.from_numpy(velocity).to(sample.device, sample.dtype)
        return Transformer2DModelOutput(sample=velocity) if return_dict else (velocity,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sample_size={self.config.sample_size}, num_classes={self.config.num_classes})"


def scheduler_from_manifest(generator: dict):
    """The diffusers scheduler named in the manifest, with its saved config."""
    import diffusers

    scheduler = generator["scheduler"]
    return getattr(diffusers, scheduler["class_name"]).from_config(scheduler["config"])


def load_onnx_generator(package_dir: PathLike, quantized: bool = False, num_threads: Optional[int] = None):
    """A :class:`TinyDiTPipeline` whose denoiser runs in ONNX Runtime, built from the manifest only."""
    from ..generator.pipeline_tiny_dit import TinyDiTPipeline

    generator = read_manifest(package_dir)["generator"]
    relative = GENERATOR_ONNX_INT8 if quantized else GENERATOR_ONNX
    denoiser = OnnxTinyDiTTransformer.from_file(Path(package_dir) / relative, generator["transformer_config"], num_threads)
    id2label = dict(enumerate(generator["labels"]))
    return TinyDiTPipeline(transformer=denoiser, scheduler=scheduler_from_manifest(generator), id2label=id2label)
