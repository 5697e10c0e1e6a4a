"""Image processor of the tiny-cats classifier: any PIL/numpy/torch image -> normalised tensor.

Self-contained (torch, numpy, PIL, transformers) so that it travels as Hub remote code.
Odd inputs are converted, not refused: grayscale, palette, CMYK, LAB, HSV, 16-bit, 32-bit,
float and RGBA images all become 8-bit RGB (16-bit scaled by 255/65535, never clipped;
transparency composited on white). Images are resized to a square without
cropping, which matches the 512x512 squashed photos the model was trained on.

Follows ``BaseImageProcessor`` conventions: every setting (``do_resize``, ``size`` as
``{"height", "width"}``, ``resample``, ``do_rescale``, ``rescale_factor``, ``do_normalize``,
``image_mean``, ``image_std``) is an attribute and can be overridden per call; ``return_tensors``
picks the output type (``None``: a list of NumPy arrays). Saved configs with ``size`` as an int load
as a square.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Union

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

try:  # transformers >= 4.43: unknown keyword arguments of preprocess() are named in a warning
    from transformers.utils import filter_out_non_signature_kwargs
except ImportError:  # pragma: no cover - older transformers: unknown arguments raise a TypeError instead

    def filter_out_non_signature_kwargs(extra=None):
        return lambda func: func


ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# A float image whose brightest value is at most this is on the [0, 1] scale, with some overshoot
# (bicubic resizing rings past 1, contrast augmentations stretch): the overshoot is clipped. On a
# 0-255 scale such an image would be black (under 1% brightness), so nothing real is misread.
# Likewise a float image up to 255 times this is on the 0-255 scale, not a 16-bit one.
UNIT_FLOAT_MAX = 2.0


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale pixel values of any dtype to uint8, from the range the dtype or the values imply.

    uint8: unchanged. bool: 0/255. uint16 (16-bit files): divided by 257, so 65535 -> 255.
    Other integers: 0-255 as is, up to 65535 as 16-bit, above that divided by the maximum.
    Floats: [0, 1] times 255 and 0-255 as is, each with overshoot up to :data:`UNIT_FLOAT_MAX` times
    the range clipped; beyond that the same ranges as integers; NaN counts as 0. Negative values become 0.
    Apart from float overshoot nothing saturates: a 16-bit image keeps its tones.
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
    elif array.dtype.kind == "f" and peak <= UNIT_FLOAT_MAX:
        scale = 255.0
    elif peak <= 255.0 or (array.dtype.kind == "f" and peak <= 255.0 * UNIT_FLOAT_MAX):
        scale = 1.0
    elif peak <= 65535.0:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / peak
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def is_unit_float(image: ImageLike) -> bool:
    """A float array or tensor on the [0, 1] scale (see :data:`UNIT_FLOAT_MAX`): already rescaled, so
    :func:`to_uint8` multiplied it by 255."""
    if isinstance(image, torch.Tensor):
        return (image.is_floating_point() and image.numel() > 0
                and float(image.detach().float().nan_to_num(0.0, 0.0, 0.0).max()) <= UNIT_FLOAT_MAX)
    if isinstance(image, np.ndarray) and image.dtype.kind == "f" and image.size:
        return float(np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0).max()) <= UNIT_FLOAT_MAX
    return False


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


def to_rgb_array(image: ImageLike, input_data_format: Optional[str] = None) -> np.ndarray:
    """Return an (H, W, 3) uint8 array from a PIL image, an HWC/CHW array or tensor.

    ``input_data_format`` (``"channels_first"`` / ``"channels_last"``) fixes the layout of a 3-D
    array; without it, a first axis of 1, 3 or 4 (and a last axis that is not) means channels first.
    """
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
    layout = str(getattr(input_data_format, "value", input_data_format) or "")
    if layout not in ("", "channels_first", "channels_last"):
        raise ValueError(f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}")
    if layout == "channels_first" or (not layout and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4)):
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


def size_dict(size: Union[int, Dict[str, int], Iterable[int], None], default: int = 224) -> Dict[str, int]:
    """``224``, ``(224, 224)``, ``{"height": 224, "width": 224}`` or ``{"shortest_edge": 224}`` -> height and width.

    Older saved configs store ``size`` as an int: it means a square.
    """
    if size is None:
        size = default
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            height, width = size["height"], size["width"]
        elif "shortest_edge" in size:
            height = width = size["shortest_edge"]
        else:
            raise ValueError(f"size must have 'height' and 'width', got {size!r}")
    elif isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = size
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        height, width = size
    else:
        raise ValueError(f"size must be an int, (height, width) or a dict with 'height' and 'width', got {size!r}")
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {height}x{width}")
    return {"height": height, "width": width}


def per_channel(values: Union[float, Iterable[float]], name: str) -> List[float]:
    """A mean/std for the 3 RGB channels: one number is used for all three."""
    if isinstance(values, (int, float, np.number)):
        return [float(values)] * 3
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{name} needs 1 or 3 values (one per RGB channel), got {len(values)}")
    return values


class TinyCatsImageProcessor(BaseImageProcessor):
    """Resize to ``size`` (bicubic, no crop), scale to [0, 1], normalise with ``image_mean``/``image_std``.

    Args:
        do_resize: resize to ``size`` (squashing, never cropping).
        size: ``{"height": h, "width": w}``; an int means a square (older configs store an int).
        resample: the PIL resampling filter (default bicubic).
        do_rescale / rescale_factor: divide 8-bit values by ``1 / rescale_factor`` (255). With
            ``do_rescale=False`` the output keeps the input's scale, as in transformers: 0-255 for
            8-bit images, 0-1 for float images already in [0, 1] (rescaled or not, float images
            pass through 8 bits for the resize).
        do_normalize / image_mean / image_std: ``(x - mean) / std`` per channel.

    Every image becomes 8-bit RGB first (see the module docstring), so the output always has 3 channels.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        do_resize: bool = True,
        size: Union[int, Dict[str, int], None] = None,
        resample: int = Image.BICUBIC,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Optional[Union[float, List[float]]] = None,
        image_std: Optional[Union[float, List[float]]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.do_resize = do_resize
        self.size = size_dict(size)
        self.resample = int(resample)
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = per_channel(image_mean if image_mean is not None else 0.5, "image_mean")
        self.image_std = per_channel(image_std if image_std is not None else 0.5, "image_std")

    def __setattr__(self, name, value):
        if name == "size":  # processor.size = 224 (or from_pretrained(..., size=224)) still means a square
            value = size_dict(value)
        super().__setattr__(name, value)

    def preprocess_one(
        self,
        image: ImageLike,
        do_resize: Optional[bool] = None,
        size: Union[int, Dict[str, int], None] = None,
        resample: Optional[int] = None,
        do_rescale: Optional[bool] = None,
        rescale_factor: Optional[float] = None,
        do_normalize: Optional[bool] = None,
        image_mean: Optional[Union[float, List[float]]] = None,
        image_std: Optional[Union[float, List[float]]] = None,
        input_data_format: Optional[str] = None,
    ) -> np.ndarray:
        """One image -> (3, height, width) float32 array; ``None`` settings fall back to the attributes."""
        array = to_rgb_array(image, input_data_format)
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"image has an empty side: {array.shape[1]}x{array.shape[0]}")
        if (self.do_resize if do_resize is None else do_resize):
            target = size_dict(self.size if size is None else size)
            method = self.resample if resample is None else int(resample)
            array = np.asarray(Image.fromarray(array).resize((target["width"], target["height"]), method))
        pixels = np.asarray(array, dtype=np.float32)
        if (self.do_rescale if do_rescale is None else do_rescale):
            factor = self.rescale_factor if rescale_factor is None else rescale_factor
            pixels = pixels / np.float32(1.0 / factor)  # 1 / (1/255) is exactly 255: x / 255, rounded once
        elif is_unit_float(image):  # do_rescale=False on an already rescaled image: keep its [0, 1] scale
            pixels = pixels / np.float32(255.0)
        if (self.do_normalize if do_normalize is None else do_normalize):
            mean = per_channel(self.image_mean if image_mean is None else image_mean, "image_mean")
            std = per_channel(self.image_std if image_std is None else image_std, "image_std")
            mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
            pixels = (pixels - mean) / std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    @filter_out_non_signature_kwargs()
    def preprocess(
        self,
        images: Union[ImageLike, List[ImageLike]],
        do_resize: Optional[bool] = None,
        size: Union[int, Dict[str, int], None] = None,
        resample: Optional[int] = None,
        do_rescale: Optional[bool] = None,
        rescale_factor: Optional[float] = None,
        do_normalize: Optional[bool] = None,
        image_mean: Optional[Union[float, List[float]]] = None,
        image_std: Optional[Union[float, List[float]]] = None,
        return_tensors: Optional[str] = "pt",
        data_format: str = "channels_first",
        input_data_format: Optional[str] = None,
    ) -> BatchFeature:
        """Process one image or a batch into ``BatchFeature(pixel_values=...)``.

        Any argument left ``None`` uses the processor's attribute of that name. ``return_tensors``:
        ``"pt"`` (the default here, an (N, 3, H, W) tensor), ``"np"`` (an array) or ``None`` (a list
        of (3, H, W) arrays, transformers' convention). ``data_format="channels_last"`` gives (H, W, 3)
        images. ``input_data_format`` fixes the layout of array inputs instead of inferring it.
        """
        if isinstance(images, (list, tuple)):
            batch = list(images)
        elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            batch = list(images)
        else:
            batch = [images]
        if not batch:
            raise ValueError("no images given")
        layout = str(getattr(data_format, "value", data_format))
        if layout not in ("channels_first", "channels_last"):
            raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
        settings = dict(do_resize=do_resize, size=size, resample=resample, do_rescale=do_rescale,
                        rescale_factor=rescale_factor, do_normalize=do_normalize, image_mean=image_mean,
                        image_std=image_std, input_data_format=input_data_format)
        arrays = [self.preprocess_one(image, **settings) for image in batch]
        if layout == "channels_last":
            arrays = [np.ascontiguousarray(a.transpose(1, 2, 0)) for a in arrays]
        if return_tensors is None:
            return BatchFeature({"pixel_values": arrays})
        if len({a.shape for a in arrays}) > 1:
            raise ValueError("images of different sizes cannot be stacked (do_resize=False); use return_tensors=None")
        stacked = np.stack(arrays)
        kind = str(getattr(return_tensors, "value", return_tensors))
        if kind in ("pt", "np", "numpy"):
            return BatchFeature({"pixel_values": torch.from_numpy(stacked) if kind == "pt" else stacked})
        return BatchFeature({"pixel_values": stacked}, tensor_type=return_tensors)

    def to_dict(self) -> Dict:
        output = super().to_dict()
        output.pop("_processor_class", None)
        return output
