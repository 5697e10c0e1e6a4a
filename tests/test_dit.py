import json
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
from .hub_server import local_hub  # noqa: F401  (pytest fixture)


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
    # class ids as DiTPipeline takes them: a tensor (or a numpy array) of integers
    assert pipe.get_label_ids(torch.tensor([3, 10])) == pipe.get_label_ids(np.array([3, 10])) == [3, 10]
    assert pipe.get_label_ids(torch.tensor(7)) == [7]
    with pytest.raises(TypeError, match=r"^class ids must be integers, got a torch.float32 tensor$"):
        pipe.get_label_ids(torch.tensor([3.0]))


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
        assert type(pipe).from_pipe(pipe).transformer is pipe.transformer  # the remote class is loaded twice
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


# ------------------------------------------------------------------------ loading: diffusers' own loader


def test_from_pretrained_is_diffusers_loader_with_the_packages_classes(pipeline_dir):
    """No trust_remote_code, no second copy of the code: the folder's code files are for plain DiffusionPipeline."""
    loaded = TinyDiTPipeline.from_pretrained(pipeline_dir)
    assert type(loaded) is TinyDiTPipeline and type(loaded.transformer) is TinyDiTTransformer2DModel
    assert loaded.labels == tiny_pipeline().labels


def test_from_pretrained_accepts_diffusers_loading_options(pipeline_dir, tmp_path):
    # variant: a second set of weights beside the first, picked by name
    other = tiny_pipeline()
    with torch.no_grad():
        other.transformer.proj_out.bias.fill_(0.25)
    import shutil

    folder = tmp_path / "pipe"
    shutil.copytree(pipeline_dir, folder)
    other.transformer.save_pretrained(folder / "transformer", variant="ema")
    plain = TinyDiTPipeline.from_pretrained(folder, use_safetensors=True, low_cpu_mem_usage=False)
    ema = TinyDiTPipeline.from_pretrained(folder, variant="ema")
    assert torch.equal(plain.transformer.proj_out.bias, tiny_pipeline().transformer.proj_out.bias)
    assert torch.all(ema.transformer.proj_out.bias == 0.25)
    # a torch_dtype per component, and a device map
    half = TinyDiTPipeline.from_pretrained(folder, torch_dtype={"transformer": torch.bfloat16, "default": torch.float32})
    assert half.transformer.dtype == torch.bfloat16
    assert TinyDiTPipeline.from_pretrained(folder, device_map="cpu").transformer.device.type == "cpu"


def test_from_pretrained_reads_a_dduf_file(pipeline_dir, tmp_path):
    from huggingface_hub import export_folder_as_dduf

    export_folder_as_dduf(str(tmp_path / "pipe.dduf"), str(pipeline_dir))
    loaded = TinyDiTPipeline.from_pretrained(tmp_path, dduf_file="pipe.dduf")
    loaded.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=2, output_type="np")
    np.testing.assert_allclose(loaded("Birman", generator=torch.manual_seed(1), **kwargs).images,
                               tiny_pipeline()("Birman", generator=torch.manual_seed(1), **kwargs).images, atol=1e-6)


def test_from_pretrained_downloads_a_hub_repo_without_remote_code(pipeline_dir, local_hub):  # noqa: F811
    from huggingface_hub import HfApi

    api = HfApi(token="hf_test_token")
    api.create_repo("tester/tiny-dit")
    api.upload_folder(repo_id="tester/tiny-dit", folder_path=str(pipeline_dir))
    loaded = TinyDiTPipeline.from_pretrained("tester/tiny-dit")
    assert type(loaded.transformer) is TinyDiTTransformer2DModel
    assert torch.equal(loaded.transformer.proj_out.weight, tiny_pipeline().transformer.proj_out.weight)



def test_save_pretrained_push_to_hub_uploads_the_finished_folder(local_hub, tmp_path):  # noqa: F811
    """diffusers uploads at the end of its save_pretrained; the code files and model_index.json entries that
    make the repo loadable as remote code come after it, so they must be in the upload too."""
    from diffusers import DiffusionPipeline
    from huggingface_hub import HfApi

    tiny_pipeline().save_pretrained(tmp_path / "tiny-dit", push_to_hub=True, repo_id="tester/pushed",
                                    token="hf_test_token", commit_message="push")
    files = set(HfApi(token="hf_test_token").list_repo_files("tester/pushed"))
    assert {"pipeline_tiny_dit.py", "modeling_tiny_dit.py", "transformer/modeling_tiny_dit.py", "README.md"} <= files
    loaded = DiffusionPipeline.from_pretrained("tester/pushed", trust_remote_code=True)
    assert type(loaded).__name__ == "TinyDiTPipeline" and type(loaded).__module__ != TinyDiTPipeline.__module__
    assert torch.equal(loaded.transformer.proj_out.weight, tiny_pipeline().transformer.proj_out.weight)


# ------------------------------------------------------------------------- __call__: diffusers' contract


def test_latents_replace_the_sampled_noise():
    pipe = tiny_pipeline()
    kwargs = dict(num_inference_steps=3, output_type="np")
    noise = torch.randn(2, 3, 16, 16, generator=torch.manual_seed(5))
    from_generator = pipe(["Bengal", "Siamese"], generator=torch.manual_seed(5), **kwargs).images
    from_latents = pipe(["Bengal", "Siamese"], latents=noise.clone(), **kwargs).images
    np.testing.assert_array_equal(from_generator, from_latents)
    with pytest.raises(ValueError, match=r"^latents must have shape \(2, 3, 16, 16\) \(images, channels, side, side\), "
                                         r"got \(1, 3, 16, 16\)$"):
        pipe(["Bengal", "Siamese"], latents=noise[:1], **kwargs)


def test_output_type_latent_is_the_unclamped_sample():
    pipe = tiny_pipeline()
    kwargs = dict(num_inference_steps=2, generator=torch.manual_seed(0))
    latent = pipe("Bengal", output_type="latent", **kwargs).images
    kwargs["generator"] = torch.manual_seed(0)
    pt = pipe("Bengal", output_type="pt", **kwargs).images
    assert torch.equal((latent / 2 + 0.5).clamp(0, 1), pt)
    with pytest.raises(ValueError, match=r"^output_type must be 'pil', 'np', 'pt' or 'latent', got 'jpg'$"):
        pipe("Bengal", output_type="jpg")


def test_callback_on_step_end_sees_and_replaces_the_latents():
    pipe = tiny_pipeline()
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, float(timestep), sorted(tensors), p.guidance_scale, p.num_timesteps))
        if step == p.num_timesteps - 1:
            tensors["latents"] = torch.zeros_like(tensors["latents"])
        return tensors

    out = pipe("Persian", num_inference_steps=3, output_type="latent", callback_on_step_end=callback,
               callback_on_step_end_tensor_inputs=["latents"]).images
    assert [s[0] for s in seen] == [0, 1, 2] and all(s[2] == ["latents"] and s[4] == 3 for s in seen)
    assert seen[0][1] > seen[1][1] > seen[2][1]  # timesteps go from noise to image
    assert out.abs().sum() == 0
    message = r"^callback_on_step_end_tensor_inputs must be among \['latents'\], got \['noise'\]$"
    with pytest.raises(ValueError, match=message):
        pipe("Persian", num_inference_steps=1, callback_on_step_end=callback,
             callback_on_step_end_tensor_inputs=["noise"])


def test_callback_can_change_guidance_and_interrupt():
    pipe = tiny_pipeline()

    def louder(p, step, timestep, tensors):
        p._guidance_scale += 1.0
        return tensors

    pipe("Persian", num_inference_steps=3, guidance_scale=2.0, callback_on_step_end=louder)
    assert pipe.guidance_scale == 5.0
    calls = count_transformer_batches(pipe)

    def stop(p, step, timestep, tensors):
        p._interrupt = True
        return tensors

    pipe("Persian", num_inference_steps=4, callback_on_step_end=stop)
    assert calls == [2]  # one guided step, then the loop skips the rest


def count_transformer_batches(pipe):
    """Record the batch size of every transformer call of ``pipe``."""
    calls, forward = [], pipe.transformer.forward

    def spy(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        return forward(sample, *args, **kwargs)

    pipe.transformer.forward = spy
    return calls


def test_guidance_interval_guides_only_inside_it_and_skips_the_unconditional_pass_outside():
    pipe = tiny_pipeline()
    calls = count_transformer_batches(pipe)
    run = lambda **kw: pipe("Persian", num_inference_steps=6, guidance_scale=5.0,  # noqa: E731
                            generator=torch.manual_seed(0), output_type="pt", **kw).images
    everywhere = run()
    assert calls == [2] * 6
    calls.clear()
    np.testing.assert_array_equal(run(guidance_interval=(0.0, 1.0)), everywhere)  # the whole range: same as None
    assert calls == [2] * 6
    calls.clear()
    pipe.scheduler.set_timesteps(6)
    sigmas = (pipe.scheduler.timesteps / 1000).tolist()
    limited = run(guidance_interval=(0.3, 0.7))
    assert calls == [2 if 0.3 < s <= 0.7 else 1 for s in sigmas] and 1 in calls and 2 in calls
    assert not torch.equal(limited, everywhere)
    calls.clear()
    never = run(guidance_interval=(0.0, min(sigmas) / 2))  # no step that low: conditional only, like scale 1
    assert calls == [1] * 6
    np.testing.assert_array_equal(never, pipe("Persian", num_inference_steps=6, guidance_scale=1.0,
                                              generator=torch.manual_seed(0), output_type="pt").images)


@pytest.mark.parametrize("bad", [(0.5,), (0.7, 0.3), (-0.1, 0.5), (0.2, 1.5), (0.1, float("nan")), "0,1", (True, 1.0),
                                 ("a", 1)])
def test_bad_guidance_interval_is_a_one_line_error(bad):
    message = r"^guidance_interval must be \(low, high\) with 0 <= low < high <= 1, got .*$"
    with pytest.raises(ValueError, match=message):
        tiny_pipeline()("Bengal", num_inference_steps=1, guidance_interval=bad)


def test_dit_gradient_checkpointing_gives_the_same_gradients():
    """Checkpointing changes no parameter name or numerics; backward gives the same gradients."""
    kwargs = dict(sample_size=16, patch_size=4, hidden_size=32, num_layers=5, num_attention_heads=2, long_skip=True,
                  final_conv=True)

    def grads(checkpointing):
        torch.manual_seed(0)
        model = TinyDiTTransformer2DModel(**kwargs)
        for param in model.parameters():
            torch.nn.init.normal_(param, std=0.05)
        names = [n for n, _ in model.named_parameters()]
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.is_gradient_checkpointing
        model.train()
        torch.manual_seed(1)
        x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([300.0, 700.0]), torch.tensor([1, 12])
        loss = model(x, t, y).sample.square().mean()
        loss.backward()
        return loss, names, {n: p.grad for n, p in model.named_parameters()}

    loss, names, plain = grads(False)
    loss_ckpt, names_ckpt, ckpt = grads(True)
    assert names == names_ckpt and torch.equal(loss, loss_ckpt)
    for name in names:
        assert torch.allclose(plain[name], ckpt[name], rtol=1e-5, atol=1e-8), name


def test_sampler_sweep_checks_its_grid_first_and_keeps_one_model_per_file(pipeline_dir, tmp_path):
    """training/sweep_sampler.py: a bad grid is refused before any model loads; a results file of another
    model is refused, since a row's key does not name its model."""
    from .test_training import load_script

    sweep = load_script("sweep_sampler")
    output = tmp_path / "sweep.json"
    for bad in (["--samplers", "euler,hune"], ["--intervals", "0.7"], ["--steps", "8,x"]):
        with pytest.raises(SystemExit) as exit_code:
            sweep.main([*bad, "--model", str(tmp_path / "absent"), "--output", str(output)])
        assert exit_code.value.code == 2
    output.write_text(json.dumps({"model": "outputs/other_run/final", "results": {"euler_8": {}}}))
    with pytest.raises(SystemExit, match="holds the sweep of outputs/other_run/final, not .*: pass another --output"):
        sweep.main(["--model", str(pipeline_dir), "--output", str(output)])
    assert json.loads(output.read_text())["results"] == {"euler_8": {}}



def test_from_pipe_shares_the_components_and_takes_overrides(pipeline_dir):
    pipe = TinyDiTPipeline.from_pretrained(pipeline_dir)
    copy = TinyDiTPipeline.from_pipe(pipe)
    assert copy.transformer is pipe.transformer and copy.scheduler is pipe.scheduler
    assert copy.config.id2label == pipe.config.id2label
    heun = FlowMatchHeunDiscreteScheduler.from_config(pipe.scheduler.config)
    swapped = TinyDiTPipeline.from_pipe(pipe, scheduler=heun)
    assert swapped.transformer is pipe.transformer and swapped.scheduler is heun
    copy.set_progress_bar_config(disable=True)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=3, output_type="np")
    a = pipe("Birman", generator=torch.manual_seed(3), **kwargs).images
    b = copy("Birman", generator=torch.manual_seed(3), **kwargs).images
    np.testing.assert_array_equal(a, b)
