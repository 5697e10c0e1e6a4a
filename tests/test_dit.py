import subprocess
import textwrap

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler
from PIL import Image

from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

from .conftest import BLOCK_TINY_CATS, PYTHON, child_env, tiny_pipeline


def test_fresh_model_is_identity_free_and_predicts_zero():
    """adaLN-Zero: every block and the output head start at zero, so a new model predicts 0."""
    model = TinyDiTTransformer2DModel(sample_size=16, patch_size=4, hidden_size=32, num_layers=2, num_attention_heads=2)
    out = model(torch.randn(3, 3, 16, 16), torch.tensor([1.0, 500.0, 999.0]), torch.tensor([0, 5, 12])).sample
    assert out.shape == (3, 3, 16, 16) and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("size,patch", [(32, 2), (64, 4), (128, 8), (256, 16)])
def test_configurable_sizes(size, patch):
    model = TinyDiTTransformer2DModel(sample_size=size, patch_size=patch, hidden_size=32, num_layers=1, num_attention_heads=2)
    out = model(torch.randn(1, 3, size, size), 10.0, torch.tensor([3])).sample
    assert out.shape == (1, 3, size, size)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="divisible by patch_size"):
        TinyDiTTransformer2DModel(sample_size=30, patch_size=4)
    with pytest.raises(ValueError, match="num_attention_heads"):
        TinyDiTTransformer2DModel(hidden_size=30, num_attention_heads=4)


def test_class_label_changes_the_prediction():
    pipe = tiny_pipeline()
    x = torch.randn(1, 3, 16, 16)
    a = pipe.transformer(x, 500.0, torch.tensor([0])).sample
    b = pipe.transformer(x, 500.0, torch.tensor([7])).sample
    assert not torch.allclose(a, b)


def test_seeded_generation_is_deterministic_and_seed_dependent():
    pipe = tiny_pipeline()
    run = lambda seed: pipe("Siamese", num_inference_steps=3, generator=torch.manual_seed(seed), output_type="np").images
    assert np.array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_output_types_and_counts():
    pipe = tiny_pipeline()
    pil = pipe(["maine coon", 0], num_images_per_breed=3, num_inference_steps=2).images
    assert len(pil) == 6 and all(isinstance(im, Image.Image) and im.size == (16, 16) for im in pil)
    pt = pipe("Bengal", num_inference_steps=2, output_type="pt").images
    assert pt.shape == (1, 3, 16, 16) and 0 <= pt.min() and pt.max() <= 1
    tup = pipe("Bengal", num_inference_steps=2, output_type="np", return_dict=False)
    assert isinstance(tup, tuple) and tup[0].shape == (1, 16, 16, 3)


def test_guidance_scale_matters_and_one_disables_it():
    pipe = tiny_pipeline()
    run = lambda g: pipe("Persian", num_inference_steps=3, guidance_scale=g, generator=torch.manual_seed(0), output_type="np").images
    assert not np.allclose(run(1.0), run(5.0))


def test_labels_like_dit_pipeline():
    pipe = tiny_pipeline()
    assert pipe.labels["Sphynx"] == 11 and len(pipe.labels) == 12
    assert pipe.get_label_ids(["british shorthair", "Abyssinian"]) == [4, 0]


def test_breeds_resolve_against_the_pipelines_own_id2label():
    pipe = tiny_pipeline()
    assert pipe.get_label_ids(["maine coon", "Maine-Coon", "MAINE_COON", " maine  coon ", 6, np.int64(11)]) == [6] * 4 + [6, 11]
    assert pipe.get_label_ids("Sphynx") == [11]
    # another class table: names and ids are the pipeline's, not the classifier's 13-label ids
    two = TinyDiTPipeline(transformer=pipe.transformer, scheduler=pipe.scheduler, id2label={"0": "Sphynx", "1": "Maine_Coon"})
    assert two.get_label_ids(["maine coon", "sphynx", 1]) == [1, 0, 1]
    with pytest.raises(ValueError, match=r"^unknown breed 'Bengal'; valid names are: Sphynx, Maine_Coon$"):
        two.get_label_ids("Bengal")
    with pytest.raises(ValueError, match=r"^'other' is not a cat breed; choose one of: Sphynx, Maine_Coon$"):
        two.get_label_ids("OTHER")
    with pytest.raises(ValueError, match="out of range 0..1"):
        two.get_label_ids(2)
    with pytest.raises(ValueError, match="unknown breed 'beagle'; valid names are: Abyssinian, .*, Sphynx$"):
        pipe.get_label_ids("beagle")
    with pytest.raises(TypeError, match="not a bool"):
        pipe.get_label_ids(True)


@pytest.mark.parametrize("bad,match", [("other", "not a cat breed"), ("tabby", "unknown breed"), ([], "no breed")])
def test_bad_breeds(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_pipeline()(bad, num_inference_steps=1)


def test_bad_counts():
    pipe = tiny_pipeline()
    with pytest.raises(ValueError, match="num_images_per_breed"):
        pipe("Bengal", num_images_per_breed=0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("Bengal", num_inference_steps=0)


def test_scheduler_swap_with_from_config():
    pipe = tiny_pipeline()
    pipe.scheduler = FlowMatchHeunDiscreteScheduler.from_config(pipe.scheduler.config)
    images = pipe("Ragdoll", num_inference_steps=3, generator=torch.manual_seed(0), output_type="np").images
    assert images.shape == (1, 16, 16, 3) and np.isfinite(images).all()


def test_save_load_round_trip_same_images(pipeline_dir):
    loaded = TinyDiTPipeline.from_pretrained(pipeline_dir)
    assert isinstance(loaded.scheduler, FlowMatchEulerDiscreteScheduler)
    loaded.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=3, output_type="np")
    a = tiny_pipeline()("Birman", generator=torch.manual_seed(3), **kwargs).images
    b = loaded("Birman", generator=torch.manual_seed(3), **kwargs).images
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_plain_diffusion_pipeline_remote_code_without_tiny_cats(pipeline_dir, tmp_path):
    script = BLOCK_TINY_CATS + textwrap.dedent(
        f"""
        import numpy as np, torch
        from diffusers import DiffusionPipeline
        pipe = DiffusionPipeline.from_pretrained({str(pipeline_dir)!r}, trust_remote_code=True)
        pipe.set_progress_bar_config(disable=True)
        images = pipe("Birman", num_inference_steps=3, generator=torch.manual_seed(3), output_type="np").images
        np.save({str(tmp_path / "remote.npy")!r}, images)
        print(type(pipe).__name__)
        """
    )
    done = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, env=child_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TinyDiTPipeline" in done.stdout
    local = tiny_pipeline()("Birman", num_inference_steps=3, generator=torch.manual_seed(3), output_type="np").images
    np.testing.assert_allclose(np.load(tmp_path / "remote.npy"), local, atol=1e-6)


def test_design_options_start_as_the_plain_model_and_old_configs_load():
    """Skips start as "ignore the skip", the final conv as the identity: a fresh model predicts zero either way."""
    from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel

    kwargs = dict(sample_size=16, patch_size=4, hidden_size=32, num_layers=5, num_attention_heads=2)
    torch.manual_seed(0)
    plain = TinyDiTTransformer2DModel(**kwargs)
    torch.manual_seed(0)
    fancy = TinyDiTTransformer2DModel(long_skip=True, final_conv=True, **kwargs)
    assert len(fancy.skip_linears) == 2 and fancy.conv_out is not None
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([300.0, 700.0]), torch.tensor([1, 12])
    assert torch.equal(plain(x, t, y).sample, fancy(x, t, y).sample)
    old = {k: v for k, v in plain.config.items() if k not in ("long_skip", "final_conv", "prediction_type", "min_sigma")}
    assert TinyDiTTransformer2DModel.from_config(old).config.prediction_type == "velocity"
    with pytest.raises(ValueError, match="prediction_type"):
        TinyDiTTransformer2DModel(prediction_type="epsilon", **kwargs)


def test_x_prediction_returns_the_velocity_of_its_x0():
    """prediction_type='sample': forward gives (x_t - x0_hat) / t, so a sampler sees a velocity model."""
    from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel

    torch.manual_seed(0)
    model = TinyDiTTransformer2DModel(sample_size=16, patch_size=4, hidden_size=32, num_layers=2,
                                      num_attention_heads=2, prediction_type="sample").eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x, torch.tensor([500.0, 10.0]), torch.tensor([0, 1])).sample  # untrained: x0_hat = 0
    assert torch.allclose(out[0], x[0] / 0.5) and torch.allclose(out[1], x[1] / 0.05)  # t clamped at min_sigma
