import subprocess
import textwrap

import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

from tiny_cats import LABELS, TinyCatsConfig, TinyCatsForImageClassification
from tiny_cats.convert_efficientnet_lite0 import (
    convert_efficientnet_lite0_state_dict,
    efficientnet_lite0_weights_path,
    load_imagenet_backbone,
)

from .conftest import BLOCK_TINY_CATS, PYTHON, child_env, tiny_classifier


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_forward_returns_logits_and_loss(backbone):
    model = tiny_classifier(backbone)
    pixels = torch.randn(2, 3, 32, 32)
    out = model(pixel_values=pixels, labels=torch.tensor([0, 12]))
    assert out.logits.shape == (2, 13)
    assert out.loss.ndim == 0 and out.loss.item() > 0
    assert model(pixel_values=pixels).loss is None


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        tiny_classifier()(pixel_values=torch.randn(3, 32, 32))


def test_unknown_backbone_refused():
    with pytest.raises(ValueError, match="backbone must be one of"):
        TinyCatsConfig(backbone="vit")


def test_config_carries_the_13_labels():
    config = TinyCatsConfig()
    assert [config.id2label[i] for i in range(13)] == list(LABELS)


def test_imagenet_conversion_covers_every_tensor():
    original = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    converted = convert_efficientnet_lite0_state_dict(original)
    model = TinyCatsForImageClassification(TinyCatsConfig())
    load_imagenet_backbone(model)
    assert set(converted) == set(model.backbone.state_dict())
    assert torch.equal(model.backbone.stem.conv.weight, original["_conv_stem.weight"])
    assert torch.equal(model.backbone.blocks[15].project.norm.running_var, original["_blocks.15._bn2.running_var"])


def test_save_and_auto_load_round_trip(classifier_dir):
    model = AutoModelForImageClassification.from_pretrained(classifier_dir).eval()
    processor = AutoImageProcessor.from_pretrained(classifier_dir)
    assert type(model).__name__ == "TinyCatsForImageClassification"
    pixels = processor(Image.new("RGB", (40, 30), "orange"))["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)
    with torch.no_grad():
        expected = tiny_classifier()(pixel_values=pixels).logits
        assert torch.allclose(model(pixel_values=pixels).logits, expected, atol=1e-6)


def test_saved_folder_has_remote_code_files(classifier_dir):
    import json

    config = json.loads((classifier_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_tiny_cats.TinyCatsForImageClassification"
    for name in ("modeling_tiny_cats.py", "configuration_tiny_cats.py", "image_processing_tiny_cats.py", "labels.py",
                 "onnx_config_tiny_cats.py"):
        assert (classifier_dir / name).is_file()


def test_pipeline_with_package_installed(classifier_dir):
    classify = pipeline("image-classification", model=str(classifier_dir))
    results = classify([Image.new("RGB", (64, 64), "gray"), Image.new("L", (10, 20))], top_k=13)
    assert len(results) == 2
    for result in results:
        assert {r["label"] for r in result} == set(LABELS)
        assert abs(sum(r["score"] for r in result) - 1) < 1e-4


def test_pipeline_remote_code_without_tiny_cats(classifier_dir, tmp_path):
    """A fresh process where `import tiny_cats` fails still classifies via trust_remote_code."""
    script = BLOCK_TINY_CATS + textwrap.dedent(
        f"""
        from PIL import Image
        from transformers import pipeline
        try:
            import tiny_cats
            raise SystemExit("tiny_cats should not be importable here")
        except ModuleNotFoundError:
            pass
        classify = pipeline("image-classification", model={str(classifier_dir)!r}, trust_remote_code=True)
        result = classify(Image.new("RGB", (50, 50), "white"), top_k=1)
        print("LABEL", result[0]["label"])
        import sys
        assert not any(m.startswith("tiny_cats") for m in sys.modules), "tiny_cats was imported"
        """
    )
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=child_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    label = done.stdout.split("LABEL", 1)[1].strip()
    assert label in LABELS
