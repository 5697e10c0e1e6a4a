"""Property-based tests of the image loader and the image processor (hypothesis).

Whatever the bytes or the image: a result, or our one-line error (ImageInputError from the
loader, ValueError from the processor), never another exception. Sizes stay small so that the
whole file runs in a few seconds; the decompression-bomb limit itself is covered by a fixed case.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tiny_cats.classifier.image_processing_tiny_cats import TinyCatsImageProcessor
from tiny_cats.image_io import MAX_IMAGE_PIXELS, ImageInputError, load_image

EXAMPLES = 60  # per property; 4 properties -> 240 cases
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROCESSOR = TinyCatsImageProcessor(size=8)
MODES = sorted(Image.MODES)
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}


def assert_one_line(err: Exception) -> None:
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text


def check_pixels(result) -> None:
    pixels = result["pixel_values"]
    assert pixels.shape == (1, 3, 8, 8) and bool(np.isfinite(pixels.numpy()).all())


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """A random image of ``mode``: random bytes in the mode's own raw layout."""
    probe = Image.new(mode, (1, 1))
    bytes_per_pixel = len(probe.tobytes())
    data = np.random.default_rng(seed).integers(0, 256, width * height * bytes_per_pixel, dtype=np.uint8).tobytes()
    if mode == "1":
        return Image.frombytes("L", (width, height), data).convert("1")
    if mode == "F":  # random bytes would be NaN/inf floats as often as not: keep one such case, mostly sane values
        values = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)[..., 0].astype(np.float32)
        if seed % 3 == 0:
            values = values * 1000.0
        if seed % 5 == 0:
            values[0, 0] = np.nan
        return Image.fromarray(values / (255.0 if seed % 2 else 1.0), mode="F")
    return Image.frombytes(mode, (width, height), data)


sizes = st.integers(min_value=1, max_value=48)


@FUZZ
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_load_or_refuse(tmp_path, data):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ImageInputError as err:
        assert_one_line(err)
        assert str(path) in str(err)
        return
    assert image.mode == "RGB"
    check_pixels(PROCESSOR(image))


@FUZZ
@given(header=st.sampled_from(sorted(FORMATS)), cut=st.floats(min_value=0.0, max_value=1.0),
       flips=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8), seed=st.integers(0, 2**16))
def test_damaged_real_files_load_or_refuse(tmp_path, header, cut, flips, seed):
    """A valid file of each format, truncated and with bytes flipped: the decoder's errors stay ours."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(buffer, format=header)
    data = bytearray(buffer.getvalue())
    for position in flips:
        data[position % len(data)] ^= 0xFF
    data = data[: max(1, int(len(data) * cut))] if cut < 1.0 else data
    path = tmp_path / f"damaged{FORMATS[header]}"
    path.write_bytes(bytes(data))
    try:
        image = load_image(path)
    except ImageInputError as err:
        assert_one_line(err)
        return
    check_pixels(PROCESSOR(image))


@FUZZ
@given(mode=st.sampled_from(MODES), width=sizes, height=sizes, seed=st.integers(0, 2**16))
def test_every_mode_through_processor_and_loader(tmp_path, mode, width, height, seed):
    image = random_image(mode, width, height, seed)
    check_pixels(PROCESSOR(image))  # the processor converts every mode
    for fmt, suffix in (("PNG", ".png"), ("TIFF", ".tif")):
        path = tmp_path / f"img{suffix}"
        try:
            image.save(path, format=fmt)
        except (OSError, ValueError, KeyError):
            continue  # Pillow cannot write this mode in this format: nothing to load
        try:
            loaded = load_image(path)
        except ImageInputError as err:
            assert_one_line(err)
            continue
        assert loaded.mode == "RGB" and loaded.size == (width, height)
        check_pixels(PROCESSOR(loaded))


@FUZZ
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int32", "int64", "float32", "float64", "bool", "float16"]),
    shape=st.sampled_from([(0, 5), (5, 0), (6, 7), (6, 7, 1), (6, 7, 2), (6, 7, 3), (6, 7, 4), (6, 7, 5), (3, 6, 7),
                           (1, 6, 7), (4, 6, 7), (6,), (2, 3, 4, 5, 6)]),
    scale=st.sampled_from([1.0, 255.0, 65535.0, 1e9, -1.0]),
    seed=st.integers(0, 2**16),
)
def test_arrays_through_processor(dtype, shape, scale, seed):
    values = np.random.default_rng(seed).random(shape) * scale
    array = values.astype(dtype)
    try:
        result = PROCESSOR(array)
    except ValueError as err:
        assert_one_line(err)
        return
    assert result["pixel_values"].shape[1:] == (3, 8, 8)
    assert bool(np.isfinite(result["pixel_values"].numpy()).all())


def test_bomb_limit_is_refused_by_the_loader(tmp_path):
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)
    with pytest.raises(ImageInputError, match="pixel limit") as info:
        load_image(path)
    assert_one_line(info.value)
