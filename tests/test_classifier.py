import subprocess
import textwrap

import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

from tiny_cats import LABELS, TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor, TinyCatsModel
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
    encoder = model.tiny_cats.encoder
    assert set(converted) == set(encoder.state_dict())
    assert torch.equal(encoder.stem.conv.weight, original["_conv_stem.weight"])
    assert torch.equal(encoder.blocks[15].project.norm.running_var, original["_blocks.15._bn2.running_var"])
    base = TinyCatsModel(TinyCatsConfig())
    load_imagenet_backbone(base)  # the base model alone takes them too
    assert torch.equal(base.encoder.head.conv.weight, original["_conv_head.weight"])


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
    assert config["auto_map"]["AutoModel"] == "modeling_tiny_cats.TinyCatsModel"
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
        from transformers import AutoModel
        base = AutoModel.from_pretrained({str(classifier_dir)!r}, trust_remote_code=True)
        assert type(base).__name__ == "TinyCatsModel", type(base)
        import sys
        assert not any(m.startswith("tiny_cats") for m in sys.modules), "tiny_cats was imported"
        """
    )
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=child_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    label = done.stdout.split("LABEL", 1)[1].strip()
    assert label in LABELS


# --------------------------------------------------------------------- transformers conventions


@pytest.mark.parametrize("backbone,maps,stem_side", [("efficientnet_lite0", 8, 16), ("resnet18", 5, 8)])
def test_hidden_states_are_one_feature_map_per_stage_from_argument_or_config(backbone, maps, stem_side):
    model = tiny_classifier(backbone)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(pixel_values=pixels).hidden_states is None
        by_argument = model(pixel_values=pixels, output_hidden_states=True).hidden_states
        model.config.output_hidden_states = True
        out = model(pixel_values=pixels)
        base = model.tiny_cats(pixels)
        as_tuple = model(pixel_values=pixels, return_dict=False)
    assert len(by_argument) == len(out.hidden_states) == len(base.hidden_states) == maps
    assert by_argument[0].shape[-2:] == (stem_side, stem_side)  # the stem's map first
    assert all(a.ndim == 4 and torch.equal(a, b) for a, b in zip(by_argument, out.hidden_states))
    assert by_argument[-1].shape[-2:] == (1, 1)  # 32 px / 32
    assert len(as_tuple) == 2 and torch.equal(as_tuple[0], out.logits) and len(as_tuple[1]) == maps
    # the pooled features are the mean of the last feature map
    assert torch.allclose(base.pooler_output, base.last_hidden_state.mean(dim=(2, 3)))


def test_problem_types_like_transformers_image_classifiers():
    torch.manual_seed(0)
    pixels = torch.randn(3, 3, 32, 32)
    model = tiny_classifier()
    single = model(pixel_values=pixels, labels=torch.tensor([0, 5, 12]))
    assert torch.allclose(single.loss, torch.nn.functional.cross_entropy(single.logits, torch.tensor([0, 5, 12])))
    targets = torch.zeros(3, 13)
    targets[0, 1] = targets[2, 4] = 1.0
    multi = model(pixel_values=pixels, labels=targets)  # float (batch, num_labels) labels: multi-label
    assert torch.allclose(multi.loss, torch.nn.functional.binary_cross_entropy_with_logits(multi.logits, targets))
    model.config.problem_type = "regression"
    reg = model(pixel_values=pixels, labels=targets)
    assert torch.allclose(reg.loss, torch.nn.functional.mse_loss(reg.logits, targets))
    torch.manual_seed(0)
    one = TinyCatsForImageClassification(TinyCatsConfig(image_size=32, num_labels=1)).eval()
    values = torch.tensor([0.5, -1.0, 2.0])
    out = one(pixel_values=pixels, labels=values)  # num_labels == 1: regression by default
    assert torch.allclose(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(), values))
    model.config.problem_type = "single_label_classification"
    assert torch.allclose(model(pixel_values=pixels, labels=torch.tensor([0, 5, 12])).loss, single.loss)


def test_base_model_auto_model_and_base_model_prefix(classifier_dir):
    model = tiny_classifier()
    assert model.base_model_prefix == "tiny_cats" and model.base_model is model.tiny_cats
    base = AutoModel.from_pretrained(classifier_dir).eval()
    assert type(base) is TinyCatsModel and base.base_model is base
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(base(pixels).pooler_output, model.tiny_cats(pixels).pooler_output, atol=1e-6)
    assert all(name.startswith(("tiny_cats.encoder.", "classifier.")) for name in model.state_dict())


def _save_in_old_layout(model, folder):
    """A checkpoint as saved before TinyCatsModel existed: ``backbone.*`` and ``classifier.*``."""
    from safetensors.torch import save_file

    model.save_pretrained(folder)
    old = {("backbone." + k[len("tiny_cats.encoder."):] if k.startswith("tiny_cats.encoder.") else k): v.contiguous()
           for k, v in model.state_dict().items()}
    save_file(old, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return old


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_old_checkpoints_with_backbone_keys_still_load(tmp_path, backbone):
    model = tiny_classifier(backbone)
    with torch.no_grad():  # give the BatchNorm statistics non-default values
        for name, buffer in model.named_buffers():
            if "running" in name:
                buffer.uniform_(0.5, 1.5)
    old = _save_in_old_layout(model, tmp_path)
    assert any(k.startswith("backbone.") for k in old)
    loaded, info = TinyCatsForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    base, info = TinyCatsModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == []
    assert torch.equal(base.encoder.stem[0].weight if backbone == "resnet18" else base.encoder.stem.conv.weight,
                       old["backbone.stem.0.weight" if backbone == "resnet18" else "backbone.stem.conv.weight"])
    # and a state dict passed directly, to transformers or to plain torch (accelerate's load_state, DDP's "module.")
    direct = TinyCatsForImageClassification.from_pretrained(None, config=model.config, state_dict=old)
    assert torch.equal(direct.classifier.weight, model.classifier.weight)
    fresh = TinyCatsForImageClassification(model.config)
    fresh.load_state_dict(old, strict=True)
    wrapped = torch.nn.ModuleDict({"module": TinyCatsForImageClassification(model.config)})
    wrapped.load_state_dict({f"module.{k}": v for k, v in old.items()}, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor) and torch.equal(wrapped["module"].state_dict()[name], tensor)
    assert any(k.startswith("backbone.") for k in old)  # the caller's dict is left as it was


def test_bundled_classifier_is_saved_under_todays_names():
    from safetensors import safe_open

    from tiny_cats.defaults import DEFAULT_CLASSIFIER

    with safe_open(str(DEFAULT_CLASSIFIER / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith(("tiny_cats.encoder.", "classifier.")) for k in keys)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_gradient_checkpointing_gives_the_same_gradients_and_statistics(backbone, reentrant):
    """Train mode (dropout, stochastic depth, BatchNorm batch statistics): same loss, gradients and running stats."""

    def step(checkpointing):
        torch.manual_seed(0)
        model = TinyCatsForImageClassification(TinyCatsConfig(backbone=backbone, image_size=32, drop_connect_rate=0.5))
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
            assert model.is_gradient_checkpointing and model.tiny_cats.encoder.gradient_checkpointing
        model.train()
        torch.manual_seed(1)
        out = model(pixel_values=torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 12]))
        out.loss.backward()
        return out.loss, model

    loss, plain = step(False)
    loss_ckpt, ckpt = step(True)
    assert torch.equal(loss, loss_ckpt)
    grads = dict(plain.named_parameters())
    for name, param in ckpt.named_parameters():
        assert param.grad is not None, name
        assert torch.allclose(param.grad, grads[name].grad, rtol=1e-5, atol=1e-7), name
    buffers = dict(plain.named_buffers())
    for name, buffer in ckpt.named_buffers():  # the recomputation does not update BatchNorm a second time
        assert torch.equal(buffer, buffers[name]), name


# ------------------------------------------------------------------- calibration and test-time flip


def test_temperature_divides_the_logits_everywhere(tmp_path):
    pixels = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 4, 12])
    plain = tiny_classifier()
    calibrated = tiny_classifier()
    calibrated.config.temperature = 2.5
    with torch.no_grad():
        raw = plain(pixel_values=pixels).logits
        out = calibrated(pixel_values=pixels, labels=labels)
    assert torch.allclose(out.logits, raw / 2.5)
    assert torch.equal(out.logits.argmax(-1), raw.argmax(-1))
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(raw / 2.5, labels))
    # saved and reloaded; the pipeline's scores are the softmax of the calibrated logits
    calibrated.save_pretrained(tmp_path)
    TinyCatsImageProcessor(size=32).save_pretrained(tmp_path)
    reloaded = TinyCatsForImageClassification.from_pretrained(tmp_path)
    assert reloaded.config.temperature == 2.5
    image = Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy())
    scores = pipeline("image-classification", model=str(tmp_path))(image, top_k=13)
    with torch.no_grad():
        expected = torch.softmax(plain(**TinyCatsImageProcessor(size=32)(image)).logits[0] / 2.5, -1)
    for row in scores:
        assert abs(row["score"] - expected[LABELS.index(row["label"])].item()) < 1e-5


def test_temperature_is_validated_and_saved_without_generation_warnings(tmp_path, recwarn):
    for bad in (0, -1.0, float("nan"), float("inf"), "2", True):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            TinyCatsConfig(temperature=bad)
    TinyCatsConfig(temperature=1.7).save_pretrained(tmp_path)
    assert not [w for w in recwarn if "generation" in str(w.message)]


def test_old_configs_without_the_new_options_load_unchanged(tmp_path):
    import json

    TinyCatsConfig(image_size=32).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("temperature", None)
    saved.pop("test_time_flip", None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = TinyCatsConfig.from_pretrained(tmp_path)
    assert config.temperature == 1.0 and config.test_time_flip is False


def test_test_time_flip_averages_mirrored_logits_in_eval_mode_only():
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 32, 32)
    plain = tiny_classifier()
    flipping = tiny_classifier()
    flipping.config.test_time_flip = True
    with torch.no_grad():
        expected = (plain(pixel_values=pixels).logits + plain(pixel_values=pixels.flip(-1)).logits) / 2
        out = flipping(pixel_values=pixels, output_hidden_states=True)
    assert torch.allclose(out.logits, expected, atol=1e-5)
    assert out.hidden_states[0].shape[0] == 2  # the hidden states are the unflipped images'
    mirrored = pixels.flip(-1)
    with torch.no_grad():
        assert torch.allclose(flipping(pixel_values=mirrored).logits, out.logits, atol=1e-5)  # flip-invariant
    plain.train()
    flipping.train()
    torch.manual_seed(3)
    a = plain(pixel_values=pixels).logits
    torch.manual_seed(3)
    b = flipping(pixel_values=pixels).logits
    assert torch.equal(a, b)  # training mode ignores it


def test_onnx_export_carries_temperature_and_flip(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    from optimum.exporters.onnx import export

    from tiny_cats.classifier.onnx_config_tiny_cats import TinyCatsOnnxConfig

    model = tiny_classifier()
    with torch.no_grad():  # non-trivial eval-mode features
        for name, buffer in model.named_buffers():
            if "running_var" in name:
                buffer.fill_(0.2)
    model.config.temperature = 3.0
    model.config.test_time_flip = True
    export(model.eval(), TinyCatsOnnxConfig(model.config, task="image-classification"), tmp_path / "model.onnx")
    pixels = torch.randn(2, 3, 32, 32)
    (logits,) = ort.InferenceSession(str(tmp_path / "model.onnx")).run(["logits"], {"pixel_values": pixels.numpy()})
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)
