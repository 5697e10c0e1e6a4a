"""PyTorch vs ONNX Runtime: the tolerances an export must meet, and the checks that measure it.

Each ``verify_*`` takes a model (or its folder) and an ONNX file (or a session) and returns the
largest absolute difference; :func:`check_parity` turns one above its tolerance into an error.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from .runtime import OnnxTinyDiTTransformer, ort_session

# Largest max-abs difference accepted between PyTorch and the fp32 ONNX file; an export above it fails.
# Logits reach tens, and fp32 rounding differs by ~5e-6 of that after 16 blocks (ORT runs
# BatchNorm folded into the convolutions), hence 1e-3 for logits; velocities are of order 1.
CLASSIFIER_LOGITS_ATOL = 1e-3
DENOISER_VELOCITY_ATOL = 1e-4
# Generated images (values in [0, 1]): a quarter of one 8-bit level.
PIPELINE_IMAGE_ATOL = 1e-3
PARITY_BATCH_SIZES = (1, 4)
# Pipeline check run at export time: few images, few steps, guidance on (both branches used).
PIPELINE_CHECK = {"breeds": ("Bengal", "Siamese"), "num_inference_steps": 8, "guidance_scale": 4.0, "seed": 0}


def as_classifier(model_or_dir):
    """A ``TinyCatsForImageClassification`` in eval mode, from itself or its folder."""
    from .. import TinyCatsForImageClassification

    if isinstance(model_or_dir, (str, os.PathLike)):
        return TinyCatsForImageClassification.from_pretrained(model_or_dir).eval()
    return model_or_dir.eval()


def as_pipeline(pipeline_or_dir):
    """A ``TinyDiTPipeline`` without progress bars, from itself or its folder."""
    from ..generator.pipeline_tiny_dit import TinyDiTPipeline

    if isinstance(pipeline_or_dir, (str, os.PathLike)):
        pipeline_or_dir = TinyDiTPipeline.from_pretrained(pipeline_or_dir)
    pipeline_or_dir.set_progress_bar_config(disable=True)
    return pipeline_or_dir


def _session(session_or_path, num_threads: Optional[int] = None):
    return ort_session(session_or_path, num_threads) if isinstance(session_or_path, (str, os.PathLike)) else session_or_path


def verify_classifier_parity(
    model_or_dir, onnx_path, batch_sizes: Sequence[int] = PARITY_BATCH_SIZES, seed: int = 0, num_threads: Optional[int] = None
) -> Dict[int, float]:
    """Max abs logit difference, PyTorch vs ONNX, per batch size, on seeded inputs in [-1, 1]."""
    model, session = as_classifier(model_or_dir), _session(onnx_path, num_threads)
    size, channels = model.config.image_size, model.config.num_channels
    generator, diffs = torch.Generator().manual_seed(seed), {}
    for batch in batch_sizes:
        pixels = torch.rand(batch, channels, size, size, generator=generator) * 2 - 1
        with torch.no_grad():
            expected = model(pixel_values=pixels).logits.numpy()
        (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
        diffs[batch] = float(np.abs(logits - expected).max())
    return diffs


def verify_generator_parity(
    pipeline_or_dir, onnx_path, batch_sizes: Sequence[int] = PARITY_BATCH_SIZES, seed: int = 0, num_threads: Optional[int] = None
) -> Dict[int, float]:
    """Max abs velocity difference of the denoiser, PyTorch vs ONNX, per batch size.

    Inputs are seeded noise, timesteps spread over [0, 1000] and class ids including the null label.
    """
    transformer = as_pipeline(pipeline_or_dir).transformer
    denoiser = OnnxTinyDiTTransformer(_session(onnx_path, num_threads), dict(transformer.config))
    size, channels = transformer.config.sample_size, transformer.config.in_channels
    generator, diffs = torch.Generator().manual_seed(seed), {}
    for batch in batch_sizes:
        sample = torch.randn(batch, channels, size, size, generator=generator)
        timestep = torch.rand(batch, generator=generator) * 1000
        labels = torch.randint(0, transformer.null_class_id + 1, (batch,), generator=generator)
        with torch.no_grad():
            expected = transformer(sample, timestep, labels).sample
        diffs[batch] = float((denoiser(sample, timestep, labels).sample - expected).abs().max())
    return diffs


def verify_pipeline_parity(
    pipeline_or_dir,
    onnx_path,
    breeds: Sequence[str] = PIPELINE_CHECK["breeds"],
    num_inference_steps: int = PIPELINE_CHECK["num_inference_steps"],
    guidance_scale: float = PIPELINE_CHECK["guidance_scale"],
    seed: int = PIPELINE_CHECK["seed"],
    num_threads: Optional[int] = None,
) -> float:
    """Max abs difference of generated images (values in [0, 1]), PyTorch vs ONNX denoiser, same seed."""
    from ..generator.pipeline_tiny_dit import TinyDiTPipeline

    pipe = as_pipeline(pipeline_or_dir)
    denoiser = OnnxTinyDiTTransformer(_session(onnx_path, num_threads), dict(pipe.transformer.config))
    onnx_pipe = TinyDiTPipeline(transformer=denoiser, scheduler=pipe.scheduler, id2label=pipe.config.id2label)
    onnx_pipe.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, output_type="np")
    expected = pipe(list(breeds), generator=torch.manual_seed(seed), **kwargs).images
    images = onnx_pipe(list(breeds), generator=torch.manual_seed(seed), **kwargs).images
    return float(np.abs(images - expected).max())


def top1_agreement(session_a, session_b, pixel_values: np.ndarray, num_threads: Optional[int] = None) -> float:
    """Share of images on which two classifier files (e.g. fp32 and int8) pick the same label."""
    feeds = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)}
    (a,) = _session(session_a, num_threads).run(["logits"], feeds)
    (b,) = _session(session_b, num_threads).run(["logits"], feeds)
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def check_parity(name: str, diff: float, atol: float) -> None:
    """Refuse the export when ``diff`` is above ``atol`` (or NaN)."""
    if not diff <= atol:  # also catches NaN
        raise RuntimeError(f"{name}: ONNX differs from PyTorch by {diff:.3g} (tolerance {atol:g}); export refused")
