"""Reading user images safely: one clear line per bad file, never a deep traceback.

:func:`load_images` reads every file first and raises one :class:`ImageInputError` naming all the
bad ones (empty, missing, a folder, unreadable, not an image, truncated, decompression bomb, a
URL), then converts the good ones to 8-bit RGB: grayscale, palette, CMYK, RGBA and LAB are
converted, and 16-bit, 32-bit and float images are scaled to 8 bits (never clipped). EXIF
orientation is applied, as transformers' own loader does. URLs are refused by name: tiny-cats
never downloads anything to classify it.

Only Pillow is imported here, so a bad file is reported before torch is loaded.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import List, Sequence, Union

from PIL import Image, ImageOps, UnidentifiedImageError

# 64 megapixels: far above any photo the model needs, far below what would exhaust memory.
MAX_IMAGE_PIXELS = 64_000_000
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^data:", re.ASCII)

PathLike = Union[str, os.PathLike]


class ImageInputError(ValueError):
    """A user-supplied image could not be used; the message names the file(s) and the problem, on one line."""


def one_line(text: object) -> str:
    """``text`` on one line: every run of white space (newlines included) becomes one space."""
    return " ".join(str(text).split())


def _check_path(source: PathLike) -> Path:
    """The path, or an :class:`ImageInputError` saying why it cannot be an image file."""
    if isinstance(source, str) and URL_PATTERN.match(source):
        raise ImageInputError(f"{source}: is a URL; tiny-cats reads local files only (download it first)")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageInputError(f"{source!r}: expected a file path, got {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageInputError(f"{path}: file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ImageInputError(f"{path}: permission denied")
    return path


def decode_image(source: PathLike) -> Image.Image:
    """Open and fully decode ``source`` in the file's own mode (EXIF orientation applied).

    Raises :class:`ImageInputError` naming the file and the problem.
    """
    path = _check_path(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageInputError(
                        f"{path}: {width}x{height} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit "
                        "(possible decompression bomb)"
                    )
                image.load()
                image = image.copy()
        if width == 0 or height == 0:
            raise ImageInputError(f"{path}: image has an empty side ({width}x{height})")
        try:
            return ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to refuse the pixels
            return image
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageInputError(f"{path}: refused as a possible decompression bomb ({one_line(err)})") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{path}: not an image file Pillow can read") from None
    except PermissionError:
        raise ImageInputError(f"{path}: permission denied") from None
    except MemoryError:
        raise ImageInputError(f"{path}: too large to decode in memory") from None
    except Exception as err:  # noqa: BLE001 - any decoder failure is a corrupt file, said in one line
        raise ImageInputError(f"{path}: corrupt or truncated image ({type(err).__name__}: {one_line(err)})") from None


def load_images(sources: Sequence[PathLike], rgb: bool = True) -> List[Image.Image]:
    """Decode every file, then raise one :class:`ImageInputError` naming all bad ones, or return the images.

    With ``rgb`` (default) the images are converted to 8-bit RGB as the classifier sees them
    (``TinyCatsImageProcessor``'s conversion: 16-bit scaled, transparency on white).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    images, errors = [], []
    for source in sources:
        try:
            images.append(decode_image(source))
        except ImageInputError as err:
            errors.append(str(err))
    if errors:
        if len(errors) == 1:
            raise ImageInputError(errors[0])
        raise ImageInputError(f"{len(errors)} of {len(sources)} images cannot be used: " + "; ".join(errors))
    if rgb:
        from .classifier.image_processing_tiny_cats import pil_to_rgb

        images = [pil_to_rgb(image) for image in images]
    return images


def load_image(source: PathLike, rgb: bool = True) -> Image.Image:
    """One file -> PIL image (8-bit RGB with ``rgb``); raises :class:`ImageInputError` naming what is wrong."""
    return load_images([source], rgb=rgb)[0]
