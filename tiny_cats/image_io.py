"""Reading user images safely: one clear error per bad file, never a deep traceback.

Grayscale, palette, CMYK, 16-bit and RGBA files are converted to RGB (by the image processor);
empty, truncated, non-image and decompression-bomb files are refused with the file named.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# 64 megapixels: far above any photo the model needs, far below what would exhaust memory.
MAX_IMAGE_PIXELS = 64_000_000


class ImageInputError(ValueError):
    """A user-supplied image could not be used; the message names the file and the problem."""


def load_image(path: os.PathLike) -> Image.Image:
    """Open and fully decode ``path``; raise :class:`ImageInputError` naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageInputError(f"{path}: file is empty (0 bytes)")
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
                return image.copy()
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageInputError(f"{path}: refused as a possible decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageInputError(f"{path}: corrupt or truncated image ({err})") from None
