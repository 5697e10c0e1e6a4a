"""Classify image files in one call, with tiny-cats' own image loading in front of transformers' pipeline.

``transformers.pipeline("image-classification")`` reads paths and PIL images itself with
``transformers.image_utils.load_image``, which ends in ``image.convert("RGB")``: a 16-bit image
saturates to white there, before the image processor can do anything, and a bad file raises
Pillow's or transformers' own exception. :class:`TinyCatsImageClassificationPipeline` (the same
pipeline, its ``__call__`` extended) and :func:`classify` hand it images already read by
:func:`tiny_cats.image_io.load_images` instead: every file checked first, one
:class:`~tiny_cats.image_io.ImageInputError` naming all bad files, URLs refused, and any mode
(16-bit included) converted to 8-bit RGB by the image processor's conversion.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, ImageClassificationPipeline, pipeline

from . import register_auto_classes
from .classifier.image_processing_tiny_cats import pil_to_rgb, to_rgb_array
from .defaults import DEFAULT_CLASSIFIER, resolve_model
from .image_io import ImageInputError, load_images


def _prepare(item: Any):
    if isinstance(item, (str, os.PathLike)):
        return item  # read below, together with the other paths
    if isinstance(item, Image.Image):
        return pil_to_rgb(item)
    if isinstance(item, (np.ndarray, torch.Tensor)):
        try:
            return Image.fromarray(to_rgb_array(item))
        except ValueError as err:
            raise ImageInputError(f"array of shape {tuple(item.shape)}: {err}") from None
    raise ImageInputError(f"{item!r}: expected an image path, a PIL image or an array, got {type(item).__name__}")


def prepare_images(inputs: Any):
    """Paths -> 8-bit RGB PIL images (all files checked, every bad one named); PIL images and arrays -> RGB.

    One input gives one image, a list or tuple a list; anything else (a generator, a dataset) is
    returned untouched for the pipeline to iterate.
    """
    single = not isinstance(inputs, (list, tuple))
    if single and not isinstance(inputs, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        return inputs
    items = [inputs] if single else list(inputs)
    prepared = [_prepare(item) for item in items]
    paths = [(i, item) for i, item in enumerate(prepared) if isinstance(item, (str, os.PathLike))]
    if paths:
        for (i, _), image in zip(paths, load_images([path for _, path in paths])):
            prepared[i] = image
    return prepared[0] if single else prepared


class TinyCatsImageClassificationPipeline(ImageClassificationPipeline):
    """transformers' image-classification pipeline with tiny-cats' loader in front (see the module docstring).

    ``pipeline("image-classification", model=M, pipeline_class=TinyCatsImageClassificationPipeline)``.
    """

    def __call__(self, inputs=None, **kwargs):
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        if inputs is None:
            raise ValueError("no images given")
        return super().__call__(prepare_images(inputs), **kwargs)


def load_classifier_pipeline(model: Optional[str] = None, device: str = "cpu") -> TinyCatsImageClassificationPipeline:
    """The classifier (a folder or Hub repo id; default: the bundled one) as a :class:`TinyCatsImageClassificationPipeline`."""
    register_auto_classes()
    name = resolve_model(model, DEFAULT_CLASSIFIER)
    # The processor has no "fast" variant; saying so keeps transformers from warning on every load.
    processor = AutoImageProcessor.from_pretrained(name, use_fast=False)
    # transformers logs "Device set to use cpu" for every pipeline; the device is the one asked for here.
    base_logger = logging.getLogger("transformers.pipelines.base")
    level = base_logger.level
    base_logger.setLevel(logging.ERROR)
    try:
        return pipeline("image-classification", model=name, image_processor=processor,
                        pipeline_class=TinyCatsImageClassificationPipeline, device=device)
    finally:
        base_logger.setLevel(level)


@functools.lru_cache(maxsize=2)
def _cached_pipeline(model: Optional[str], device: str) -> TinyCatsImageClassificationPipeline:
    return load_classifier_pipeline(model, device)


def classify(images, model: Optional[str] = None, top_k: int = 3, batch_size: int = 8, device: str = "cpu"):
    """Breed predictions for image paths, PIL images or arrays (one, or a list).

    Returns what transformers' pipeline returns: for one image a list of ``{"label", "score"}``
    (best first), for a list one such list per image. Raises :class:`~tiny_cats.image_io.ImageInputError`
    naming every bad file before any model work. The pipeline is loaded once per ``model``.
    """
    prepared = prepare_images(images)
    return _cached_pipeline(str(model) if model else None, device)(prepared, top_k=top_k, batch_size=batch_size)
