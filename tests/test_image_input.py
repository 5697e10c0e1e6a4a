"""Bad and odd images: converted when usable, refused with the file named when not."""

import io

import numpy as np
import pytest
import torch
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


# --------------------------------------------------------------- BaseImageProcessor conventions


def reference_pixels(image: Image.Image, size, mean=(0.5,) * 3, std=(0.5,) * 3, resample=Image.BICUBIC):
    """The processor's documented numerics: PIL resize of 8-bit RGB, / 255 in float32, (x - mean) / std."""
    resized = np.asarray(image.convert("RGB").resize((size[1], size[0]), resample), dtype=np.float32) / 255.0
    return ((resized - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1)


def photo(width=37, height=23, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_processor_settings_are_attributes_with_transformers_names():
    processor = TinyCatsImageProcessor()
    assert processor.do_resize is True and processor.size == {"height": 224, "width": 224}
    assert processor.resample == Image.BICUBIC and processor.do_rescale is True and processor.rescale_factor == 1 / 255
    assert processor.do_normalize is True and processor.image_mean == [0.5] * 3 and processor.image_std == [0.5] * 3
    assert TinyCatsImageProcessor(size=32).size == {"height": 32, "width": 32}
    assert TinyCatsImageProcessor(size={"shortest_edge": 20}).size == {"height": 20, "width": 20}
    processor.size = 12  # an int set later still means a square
    assert processor.size == {"height": 12, "width": 12}
    with pytest.raises(ValueError, match="size must"):
        TinyCatsImageProcessor(size={"longest": 3})


def test_old_saved_config_with_an_int_size_loads_as_a_square(tmp_path):
    import json

    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "TinyCatsImageProcessor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
         "size": 24}))
    processor = TinyCatsImageProcessor.from_pretrained(tmp_path)
    assert processor.size == {"height": 24, "width": 24} and processor.do_resize and processor.resample == Image.BICUBIC
    assert TinyCatsImageProcessor.from_pretrained(tmp_path, size=16).size == {"height": 16, "width": 16}
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["size"] == {"height": 24, "width": 24}


def test_default_numerics_are_the_documented_ones():
    image = photo()
    pixels = TinyCatsImageProcessor(size=16)(image)["pixel_values"]
    assert pixels.dtype == torch.float32
    np.testing.assert_array_equal(pixels[0].numpy(), reference_pixels(image, (16, 16)))  # bit for bit


def test_every_setting_can_be_overridden_per_call_without_changing_the_processor():
    image = photo()
    processor = TinyCatsImageProcessor(size=16)
    before = processor.to_dict()
    call = lambda **kw: processor(image, return_tensors="np", **kw)["pixel_values"][0]  # noqa: E731
    np.testing.assert_array_equal(call(size={"height": 8, "width": 12}), reference_pixels(image, (8, 12)))
    np.testing.assert_array_equal(call(size=10), reference_pixels(image, (10, 10)))
    np.testing.assert_array_equal(call(image_mean=[0.1, 0.2, 0.3], image_std=[0.2, 0.3, 0.4]),
                                  reference_pixels(image, (16, 16), (0.1, 0.2, 0.3), (0.2, 0.3, 0.4)))
    np.testing.assert_array_equal(call(image_mean=0, image_std=1),
                                  reference_pixels(image, (16, 16), (0,) * 3, (1,) * 3))
    np.testing.assert_array_equal(call(resample=Image.NEAREST),
                                  reference_pixels(image, (16, 16), resample=Image.NEAREST))
    np.testing.assert_array_equal(call(do_normalize=False), reference_pixels(image, (16, 16), (0,) * 3, (1,) * 3))
    unscaled = call(do_normalize=False, do_rescale=False)
    assert unscaled.max() > 1 and np.array_equal(unscaled, np.rint(unscaled))  # 8-bit values as floats
    np.testing.assert_allclose(call(do_normalize=False, rescale_factor=1 / 510), unscaled / 510, rtol=1e-6)
    assert call(do_resize=False).shape == (3, 23, 37)
    assert processor.to_dict() == before


def test_float_overshoot_past_one_is_clipped_not_read_as_0_to_255():
    """Bicubic resizing of a [0, 1] image rings past 1; one such pixel must not turn the image black."""
    image = photo()
    processor = TinyCatsImageProcessor(size=16)
    unit = np.asarray(image, dtype=np.float32) / 255
    rung = unit.copy()
    rung[0, 0] = 1.03  # overshoot
    rung[1, 1] = -0.02  # undershoot
    clipped = np.clip(rung, 0, 1)
    np.testing.assert_array_equal(processor(rung, return_tensors="np")["pixel_values"],
                                  processor(clipped, return_tensors="np")["pixel_values"])
    bright = processor(rung * 255, return_tensors="np")["pixel_values"]  # the same picture on a 0-255 scale
    np.testing.assert_allclose(bright, processor(clipped, return_tensors="np")["pixel_values"], atol=2 / 127.5)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_do_rescale_false_keeps_the_scale_of_an_already_rescaled_float_image(as_tensor):
    """transformers' convention: do_rescale=False on a [0, 1] float image does not multiply it by 255."""
    image = photo()
    processor = TinyCatsImageProcessor(size=16)
    unit = np.asarray(image, dtype=np.float32) / 255
    unit = torch.from_numpy(unit) if as_tensor else unit
    expected = processor(image, return_tensors="np")["pixel_values"]
    np.testing.assert_array_equal(processor(unit, return_tensors="np")["pixel_values"], expected)
    np.testing.assert_array_equal(processor(unit, do_rescale=False, return_tensors="np")["pixel_values"], expected)
    eight_bit = processor(image, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
    assert eight_bit.max() > 1  # an 8-bit image keeps its 0-255 scale


def test_return_tensors_follows_transformers_conventions():
    images = [photo(seed=1), photo(50, 10, seed=2)]
    processor = TinyCatsImageProcessor(size=8)
    listed = processor(images, return_tensors=None)["pixel_values"]
    assert isinstance(listed, list) and all(isinstance(a, np.ndarray) and a.shape == (3, 8, 8) for a in listed)
    stacked = processor(images, return_tensors="np")["pixel_values"]
    assert isinstance(stacked, np.ndarray) and stacked.shape == (2, 3, 8, 8)
    tensor = processor(images)["pixel_values"]  # default: "pt", as before
    assert isinstance(tensor, torch.Tensor) and torch.equal(tensor, torch.from_numpy(stacked))
    assert torch.equal(processor(images, return_tensors="pt")["pixel_values"], tensor)
    assert processor(images, data_format="channels_last", return_tensors="np")["pixel_values"].shape == (2, 8, 8, 3)
    unresized = processor(images, do_resize=False, return_tensors=None)["pixel_values"]
    assert [a.shape for a in unresized] == [(3, 23, 37), (3, 10, 50)]
    with pytest.raises(ValueError, match="cannot be stacked"):
        processor(images, do_resize=False)


def test_input_data_format_fixes_an_ambiguous_layout():
    array = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)  # CHW or HWC?
    processor = TinyCatsImageProcessor(size=4, do_resize=False)
    assert processor(array, input_data_format="channels_last")["pixel_values"].shape == (1, 3, 3, 5)
    assert processor(array, input_data_format="channels_first")["pixel_values"].shape == (1, 3, 5, 3)


def test_unknown_processor_arguments_are_named_in_a_warning():
    with pytest.warns(UserWarning, match="extra_argument"):
        TinyCatsImageProcessor(size=8)(photo(), extra_argument=True)
