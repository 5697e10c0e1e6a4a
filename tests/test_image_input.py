"""Bad and odd images: converted when usable, refused with the file named when not."""

import io

import numpy as np
import pytest
from PIL import Image

from tiny_cats import TinyCatsImageProcessor
from tiny_cats.image_io import MAX_IMAGE_PIXELS, ImageInputError, load_image


def write(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "mode,fmt",
    [("L", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("LA", "PNG"), ("1", "PNG")],
)
def test_odd_modes_are_converted_to_rgb(tmp_path, mode, fmt):
    path = write(tmp_path / f"img.{fmt.lower()}", Image.new(mode, (20, 30)), format=fmt)
    pixels = TinyCatsImageProcessor(size=16)(load_image(path))["pixel_values"]
    assert pixels.shape == (1, 3, 16, 16)


def test_16_bit_keeps_its_brightness():
    array = np.full((8, 8), 65535, dtype=np.uint16)
    pixels = TinyCatsImageProcessor(size=8, image_mean=[0, 0, 0], image_std=[1, 1, 1])(Image.fromarray(array))["pixel_values"]
    assert pixels.min().item() > 0.99


def test_rgba_transparency_becomes_white():
    pixels = TinyCatsImageProcessor(size=4, image_mean=[0, 0, 0], image_std=[1, 1, 1])(
        Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    )["pixel_values"]
    assert pixels.min().item() > 0.99


def test_extreme_aspect_ratio_works(tmp_path):
    path = write(tmp_path / "thin.png", Image.new("RGB", (1, 4000), "red"), format="PNG")
    assert TinyCatsImageProcessor(size=16)(load_image(path))["pixel_values"].shape == (1, 3, 16, 16)


def test_missing_file(tmp_path):
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "absent.jpg")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageInputError, match=r"empty \(0 bytes\)"):
        load_image(tmp_path / "empty.jpg")


def test_text_named_jpg(tmp_path):
    (tmp_path / "note.jpg").write_text("not really a picture")
    with pytest.raises(ImageInputError, match="note.jpg: not an image file"):
        load_image(tmp_path / "note.jpg")


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match="cut.jpg: corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_corrupt_png(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[40:60] = b"\x00" * 20
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageInputError, match="bad.png"):
        load_image(tmp_path / "bad.png")


def test_decompression_bomb_refused(tmp_path):
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    path = write(tmp_path / "bomb.png", Image.new("1", (side, side)), format="PNG")  # tiny file, huge image
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ImageInputError, match="bomb"):
        load_image(path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageInputError, match="is a folder"):
        load_image(tmp_path)


def test_processor_array_layouts():
    processor = TinyCatsImageProcessor(size=8)
    assert processor(np.zeros((3, 10, 12), np.uint8))["pixel_values"].shape == (1, 3, 8, 8)
    assert processor(np.zeros((10, 12), np.float32))["pixel_values"].shape == (1, 3, 8, 8)
    assert processor(np.zeros((4, 10, 12, 3), np.uint8))["pixel_values"].shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="no images"):
        processor([])
    with pytest.raises(ValueError, match="channels"):
        processor(np.zeros((10, 12, 5), np.uint8))
