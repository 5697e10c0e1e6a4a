"""Export both tiny-cats models to ONNX, quantize them to int8, check them, describe them: ``tiny-cats export``.

Writes, under a model package root ``out_dir`` (paths from :mod:`tiny_cats.layout`):
``onnx/model.onnx`` + ``onnx/model_quantized.onnx`` (classifier), ``onnx/transformer.onnx`` +
``onnx/transformer_quantized.onnx`` (the generator's denoiser; guidance and the scheduler stay
outside the graph) and ``onnx/manifest.json``, the one file the browser app and the Hub upload read.

Every file is written to a staging folder inside ``out_dir`` and moved into place only after
all exports, quantizations and parity checks passed, manifest last: an interrupted or failed
export leaves the previous files untouched and no partial ones. How each step works:
:mod:`~tiny_cats.onnx.convert`, :mod:`~tiny_cats.onnx.quantize`, :mod:`~tiny_cats.onnx.parity`,
:mod:`~tiny_cats.onnx.manifest`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..layout import CLASSIFIER_ONNX, CLASSIFIER_ONNX_INT8, GENERATOR_ONNX, GENERATOR_ONNX_INT8, ONNX_MANIFEST
from .convert import export_classifier_onnx, export_denoiser_onnx
from .manifest import (
    build_manifest,
    classifier_manifest,
    describe_onnx_file,
    generator_manifest,
    read_previous_manifest,
)
from .parity import (
    CLASSIFIER_LOGITS_ATOL,
    DENOISER_VELOCITY_ATOL,
    PIPELINE_IMAGE_ATOL,
    as_pipeline,
    check_parity,
    top1_agreement,
    verify_classifier_parity,
    verify_generator_parity,
    verify_pipeline_parity,
)
from .quantize import (
    AGREEMENT_SIZE,
    CLASSIFIER_QUANTIZATION,
    DENOISER_QUANTIZATION,
    calibration_images,
    quantize_classifier,
    quantize_denoiser,
)

PathLike = Union[str, os.PathLike]


# ---------------------------------------------------------------- staging and atomic commit


@contextlib.contextmanager
def staging_dir(out_dir: Path):
    """A hidden scratch folder inside ``out_dir`` (same file system, so moves are renames), always removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".onnx-export-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def commit(stage: Path, out_dir: Path, relatives: Iterable[str], stale: Iterable[str] = ()) -> None:
    """Rename staged files into ``out_dir`` (each rename atomic; the manifest goes last) and drop ``stale`` ones."""
    relatives = sorted(relatives, key=lambda r: r == ONNX_MANIFEST)
    for relative in relatives:
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / relative, out_dir / relative)
    for relative in stale:
        (out_dir / relative).unlink(missing_ok=True)


# ---------------------------------------------------------------- staging each model


def _pixel_values(processor, images: Sequence) -> np.ndarray:
    return np.concatenate([processor(images[i : i + 16], return_tensors="np")["pixel_values"] for i in range(0, len(images), 16)])


def stage_classifier(
    model_dir: PathLike, stage: Path, quantize: bool, images: Optional[Sequence] = None, data: Optional[str] = None,
    check_images: Optional[Sequence] = None,
) -> dict:
    """Export (and quantize) the classifier into ``stage``; returns its manifest section."""
    from .. import TinyCatsForImageClassification, TinyCatsImageProcessor

    model = TinyCatsForImageClassification.from_pretrained(model_dir).eval()
    processor = TinyCatsImageProcessor.from_pretrained(model_dir)
    export_classifier_onnx(model, stage / CLASSIFIER_ONNX)
    diff = max(verify_classifier_parity(model, stage / CLASSIFIER_ONNX).values())
    check_parity("classifier logits", diff, CLASSIFIER_LOGITS_ATOL)
    files = {"fp32": describe_onnx_file(stage, CLASSIFIER_ONNX, precision="fp32", max_abs_logit_diff_vs_pytorch=diff)}
    if quantize:
        if images is None:
            images = calibration_images(data)
            if check_images is None:
                check_images = calibration_images(data, count=AGREEMENT_SIZE, start=len(images))
        pixels = _pixel_values(processor, list(images))
        quantize_classifier(stage / CLASSIFIER_ONNX, stage / CLASSIFIER_ONNX_INT8, pixels)
        check = list(check_images or [])
        agreement = None  # measured only on photos the calibration did not see
        if check:
            agreement = top1_agreement(stage / CLASSIFIER_ONNX, stage / CLASSIFIER_ONNX_INT8, _pixel_values(processor, check))
        quantization = {**CLASSIFIER_QUANTIZATION, "calibration_images": len(pixels)}
        files["int8"] = describe_onnx_file(
            stage, CLASSIFIER_ONNX_INT8, precision="int8", quantization=quantization,
            top1_agreement_with_fp32_on_held_out_images=agreement, held_out_images=len(check),
        )
    return classifier_manifest(model.config, processor, files)


def stage_generator(pipeline_dir: PathLike, stage: Path, quantize: bool) -> dict:
    """Export (and quantize) the generator's denoiser into ``stage``; returns its manifest section."""
    pipe = as_pipeline(pipeline_dir)
    export_denoiser_onnx(pipe.transformer, stage / GENERATOR_ONNX)
    velocity = max(verify_generator_parity(pipe, stage / GENERATOR_ONNX).values())
    check_parity("denoiser velocity", velocity, DENOISER_VELOCITY_ATOL)
    images = verify_pipeline_parity(pipe, stage / GENERATOR_ONNX)
    check_parity("generated images", images, PIPELINE_IMAGE_ATOL)
    checks = {"max_abs_velocity_diff_vs_pytorch": velocity, "max_abs_image_diff_vs_pytorch": images}
    files = {"fp32": describe_onnx_file(stage, GENERATOR_ONNX, precision="fp32", **checks)}
    if quantize:
        quantize_denoiser(stage / GENERATOR_ONNX, stage / GENERATOR_ONNX_INT8)
        checks = {
            "max_abs_velocity_diff_vs_pytorch": max(verify_generator_parity(pipe, stage / GENERATOR_ONNX_INT8).values()),
            "max_abs_image_diff_vs_pytorch": verify_pipeline_parity(pipe, stage / GENERATOR_ONNX_INT8),
        }
        files["int8"] = describe_onnx_file(
            stage, GENERATOR_ONNX_INT8, precision="int8", quantization=DENOISER_QUANTIZATION, **checks
        )
    return generator_manifest(pipe, files)


# ---------------------------------------------------------------- public API


def export_all(
    classifier_dir: Optional[PathLike],
    generator_dir: Optional[PathLike],
    out_dir: PathLike,
    quantize: bool = True,
    calibration_images: Optional[Sequence] = None,
    calibration_data: Optional[str] = None,
    check_images: Optional[Sequence] = None,
) -> dict:
    """Export the classifier and/or the generator into ``out_dir/onnx/`` and write the manifest.

    Either model may be ``None`` (its manifest section, if any, is kept). Classifier calibration
    photos: ``calibration_images`` (PIL images), else :data:`~tiny_cats.onnx.quantize.CALIBRATION_SIZE`
    training photos from ``calibration_data`` (default: the local Oxford-IIIT Pet copy). int8 agreement
    with fp32 is measured on ``check_images``, else on :data:`~tiny_cats.onnx.quantize.AGREEMENT_SIZE`
    other training photos. Returns the manifest written.
    """
    out_dir = Path(out_dir)
    sections, written, stale = {}, [], []
    with staging_dir(out_dir) as stage:
        if classifier_dir is not None:
            sections["classifier"] = stage_classifier(
                classifier_dir, stage, quantize, calibration_images, calibration_data, check_images)
            written.append(CLASSIFIER_ONNX)
            (written if quantize else stale).append(CLASSIFIER_ONNX_INT8)
        if generator_dir is not None:
            sections["generator"] = stage_generator(generator_dir, stage, quantize)
            written.append(GENERATOR_ONNX)
            (written if quantize else stale).append(GENERATOR_ONNX_INT8)
        manifest = build_manifest(sections, read_previous_manifest(out_dir))
        (stage / ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        commit(stage, out_dir, written + [ONNX_MANIFEST], stale)
    return manifest


def export_classifier(model_dir: PathLike, out_dir: PathLike, quantize: bool = True, **calibration) -> dict:
    """Export the classifier only (see :func:`export_all`); returns the manifest."""
    return export_all(model_dir, None, out_dir, quantize, **calibration)


def export_generator(pipeline_dir: PathLike, out_dir: PathLike, quantize: bool = True) -> dict:
    """Export the generator's denoiser only (see :func:`export_all`); returns the manifest."""
    return export_all(None, pipeline_dir, out_dir, quantize)
