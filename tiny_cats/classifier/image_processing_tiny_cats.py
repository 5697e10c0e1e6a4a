"""Image processor of the tiny-cats classifier: any PIL/numpy/torch image -> normalised tensor.

Self-contained (torch, numpy, PIL, transformers) so that it travels as Hub remote code.
Odd inputs are converted, not refused: grayscale, palette, CMYK, LAB, HSV, 16-bit, 32-bit,
float and RGBA images all become 8-bit RGB (16-bit scaled by 255/65535, never clipped;
transparency composited on white). Images are resized to a square without
cropping, which matches the 512x512 squashed photos the model was trained on.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Union

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale pixel values of any dtype to uint8, from the range the dtype or the values imply.

    uint8: unchanged. bool: 0/255. uint16 (16-bit files): divided by 257, so 65535 -> 255.
    Other integers: 0-255 as is, up to 65535 as 16-bit, above that divided by the maximum.
    Floats: [0, 1] times 255, then the same ranges as integers; NaN counts as 0.
    Negative values become 0. Nothing above the range saturates: a 16-bit image keeps its tones.
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype.kind not in "uif":
        raise ValueError(f"unsupported pixel type {array.dtype}")
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    values = np.maximum(values, 0.0)
    peak = float(values.max()) if values.size else 0.0
    if array.dtype.kind == "u" and array.dtype.itemsize == 2:
        scale = 255.0 / 65535.0
    elif array.dtype.kind == "f" and peak <= 1.0:
        scale = 255.0
    elif peak <= 255.0:
        scale = 1.0
    elif peak <= 65535.0:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / peak
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB; 16-bit, 32-bit and float images are scaled, not clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_BIT_DEPTH_MODES:
        image = Image.fromarray(to_uint8(np.asarray(image)), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "La":  # premultiplied alpha: Pillow converts it to LA only
        image = image.convert("LA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """Return an (H, W, 3) uint8 array from a PIL image, an HWC/CHW array or tensor."""
    if isinstance(image, Image.Image):
        return np.asarray(pil_to_rgb(image))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        array = (image.float() if image.dtype in (torch.bfloat16, torch.float16) else image).numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"expected an image with 2 or 3 dimensions, got shape {array.shape}")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image has an empty side: {array.shape[1]}x{array.shape[0]}")
    array = to_uint8(array)
    channels = array.shape[-1]
    if channels == 1:
        array = np.repeat(array, 3, axis=-1)
    elif channels == 4:
        return np.asarray(pil_to_rgb(Image.fromarray(np.ascontiguousarray(array), mode="RGBA")))
    elif channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    return array


class TinyCatsImageProcessor(BaseImageProcessor):
    """Resize to ``size`` x ``size`` (bicubic), scale to [0, 1], normalise with ``image_mean``/``image_std``."""

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: int = 224,
        image_mean: Optional[List[float]] = None,
        image_std: Optional[List[float]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(size, dict):  # tolerate transformers' {"height": h, "width": w} form
            size = int(size.get("height", size.get("shortest_edge", 224)))
        self.size = int(size)
        self.image_mean = list(image_mean) if image_mean is not None else [0.5, 0.5, 0.5]
        self.image_std = list(image_std) if image_std is not None else [0.5, 0.5, 0.5]

    def preprocess_one(self, image: ImageLike) -> torch.Tensor:
        """One image -> (3, size, size) float tensor."""
        array = to_rgb_array(image)
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"image has an empty side: {array.shape[1]}x{array.shape[0]}")
        resized = Image.fromarray(array).resize((self.size, self.size), Image.BICUBIC)
        tensor = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return (tensor - mean) / std

    def preprocess(self, images: Union[ImageLike, List[ImageLike]], return_tensors: Optional[str] = "pt", **kwargs):
        """Process one image or a list into ``BatchFeature(pixel_values=(N, 3, size, size))``."""
        if isinstance(images, (list, tuple)):
            batch = list(images)
        elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            batch = list(images)
        else:
            batch = [images]
        if not batch:
            raise ValueError("no images given")
        pixel_values = torch.stack([self.preprocess_one(image) for image in batch])
        if return_tensors in ("np", "numpy"):
            return BatchFeature({"pixel_values": pixel_values.numpy()})
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors if return_tensors != "pt" else None)

    def to_dict(self) -> Dict:
        output = super().to_dict()
        output.pop("_processor_class", None)
        return output
