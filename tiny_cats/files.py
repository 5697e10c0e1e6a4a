"""Writing files so that no reader ever sees half of one: every tiny-cats output goes through here.

:func:`write_atomically` lets a writer fill a temporary file beside the target, then renames it into
place (a rename is atomic on one file system); on any failure, interruption included, the temporary
file is removed and the target is untouched. :func:`staged_folder` does the same for a folder.
Standard library only: the CLI's parser reads :data:`IMAGE_FORMATS`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

# Output image formats, by file extension (what Pillow writes).
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: os.PathLike, writer: Callable[[str], object], suffix: str = ".tmp") -> Path:
    """Let ``writer`` fill a temp file beside ``path`` (it gets the temp file's name), then rename it into place.

    ``mkstemp`` creates the file as 0600; it gets the usual 0666-minus-umask before the rename,
    since these files are published (Hub upload, web server) and read by other users.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def staged_folder(path: os.PathLike) -> Iterator[Path]:
    """Fill the folder it yields (a new one beside ``path``), then it replaces ``path`` whole.

    On any failure the staged folder is removed and ``path`` (a previous one included) is untouched;
    a previous ``path`` is moved aside before the rename and deleted after it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it 0700
        old = path.with_name(f".{path.name}.old-{os.getpid()}") if path.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)  # left by a crashed run with the same pid
            os.rename(path, old)
        os.rename(stage, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def write_text(text: str, path: os.PathLike) -> Path:
    """``text`` as UTF-8, atomically."""
    return write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def image_format(path: os.PathLike) -> str:
    """The Pillow format that ``path``'s extension names; ``ValueError`` for any other extension."""
    path = Path(path)
    found = IMAGE_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"{path}: unsupported image extension {path.suffix!r}; use one of {', '.join(IMAGE_FORMATS)}")
    return found


def save_image(image, path: os.PathLike) -> Path:
    """A PIL image, atomically, in the format its extension names (JPEG and WebP at quality 95)."""
    path = Path(path)
    fmt = image_format(path)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    return write_atomically(path, lambda tmp: image.save(tmp, format=fmt, **options), path.suffix)
