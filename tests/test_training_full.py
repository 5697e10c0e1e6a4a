"""Training at full strength: configs, exact resume after SIGKILL, 2 processes, OOM recovery, streams.

Tiny models on made-up images. The slow tests start real subprocesses (a run killed with
SIGKILL; two processes through ``accelerate launch``).
"""

import json
import math
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.training.accelerator import accumulation_steps
from tiny_cats.training.checkpoints import TrainState, list_checkpoints, resolve_resume
from tiny_cats.training.config import parse_config
from tiny_cats.training.loaders import make_image_transform, stream_steps_per_epoch

from .conftest import PYTHON, ROOT, child_env, make_pet_folder
from .faults import inject_out_of_memory
from .test_training import TINY_CLASSIFIER, TINY_DIT, train_classifier, train_dit

CONFIGS = ROOT / "training" / "configs"
ACCELERATE_CONFIGS = ROOT / "training" / "accelerate"
WITH_FAULTS = str(ROOT / "tests" / "faults.py")  # runs a training script with faults injected (see tests/faults.py)
SEED_RECIPE = {"max_train_steps": 300000, "global_batch_size": 512, "learning_rate": 1e-4, "warmup_steps": 10000,
               "ema_decay": 0.9999, "max_grad_norm": 1.0}


@pytest.fixture(scope="module")
def cats(tmp_path_factory) -> Path:
    """17 training cats (6 per breed, one Bengal is a test duplicate): 8 batches of 2 per epoch."""
    root = tmp_path_factory.mktemp("cats") / "pets"
    return make_pet_folder(root, per_breed=7, breeds=["Abyssinian", "Bengal", "Birman"])


def dit_args(data, out, *extra):
    """A tiny train_dit.py command line that also writes a step trace into the output folder."""
    return ["--data", str(data), "--output_dir", str(out), "--trace_dir", str(out), *TINY_DIT, *extra]


def run_dit(data, out, *extra) -> dict:
    return train_dit.main(parse_config(train_dit.DiTTrainingConfig, dit_args(data, out, *extra)))


def load_weights(run: Path, step: int) -> dict:
    return load_file(run / f"checkpoint-{step}" / "model.safetensors")


def read_trace(directory: Path, rank: int = 0):
    """{step: record} (a resumed run repeats steps: the last record wins) and the final digests."""
    steps, final = {}, {}
    for line in (directory / f"trace-rank{rank}.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "step" in record:
            steps[record["step"]] = record
        else:
            final = record
    return steps, final


def load_pickle_state(path: Path):
    return torch.load(path, weights_only=False, map_location="cpu")


def assert_same_tree(a, b, path="state"):
    """Bit-identical nested state (tensors compared with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def assert_same_checkpoint(a: Path, b: Path):
    """Weights, optimizer, scheduler and EMA of two checkpoints are bit-identical."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert_same_tree(wa, wb, "weights")
    for name in ("optimizer.bin", "scheduler.bin", "custom_checkpoint_0.pkl"):
        assert_same_tree(load_pickle_state(a / name), load_pickle_state(b / name), name)
    progress = [json.loads((c / "training_config.json").read_text())["progress"] for c in (a, b)]
    assert all(p.pop("train_seconds") > 0 for p in progress)  # wall-clock: differs between the runs
    assert progress[0] == progress[1]


# --- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "gpu", "multi_gpu", "fsdp", "deepspeed_zero2", "multi_node"])
def test_accelerate_config_files_parse(name):
    """Each accelerate config loads with Accelerate's own classes and passes `accelerate launch` validation."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = ACCELERATE_CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    expected = {"cpu": "NO", "gpu": "NO", "multi_gpu": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED",
                "multi_node": "MULTI_GPU"}[name]
    assert config.distributed_type.value == expected
    assert config.mixed_precision == ("no" if name == "cpu" else "bf16")
    args = launch_command_parser().parse_args(["--config_file", str(path), "training/train_dit.py"])
    args, _, _ = _validate_launch_command(args)
    assert args.num_processes == config.num_processes
    if name == "deepspeed_zero2":
        assert args.use_deepspeed and args.zero_stage == 2
    if name == "fsdp":
        assert args.use_fsdp and args.fsdp_version == 2
    if name == "multi_node":
        assert args.num_machines == 2 and args.main_process_ip


@pytest.mark.parametrize("script,cls_name", [("dit", "DiTTrainingConfig"), ("classifier", "ClassifierTrainingConfig")])
def test_gpu_config_is_the_seed_recipe_beside_the_cpu_one(script, cls_name):
    module = train_dit if script == "dit" else train_classifier
    cls = getattr(module, cls_name)
    cpu_keys = set(yaml.safe_load((CONFIGS / f"{script}_cpu.yaml").read_text()))
    gpu_keys = set(yaml.safe_load((CONFIGS / f"{script}_gpu.yaml").read_text()))
    assert cpu_keys <= gpu_keys, "the GPU config must set every key the CPU config sets"
    cpu = parse_config(cls, ["--config", str(CONFIGS / f"{script}_cpu.yaml")])
    gpu = parse_config(cls, ["--config", str(CONFIGS / f"{script}_gpu.yaml")])
    for key, value in SEED_RECIPE.items():
        assert getattr(gpu, key) == value, key
    for key in gpu_keys - cpu_keys:  # keys only the GPU recipe sets: defaults keep the CPU recipe as it was
        assert getattr(cpu, key) == getattr(cls(), key), key
    assert [accumulation_steps(gpu, n) for n in (1, 2, 4)] == [512 // gpu.train_batch_size // n for n in (1, 2, 4)]
    assert accumulation_steps(cpu, 4) == cpu.gradient_accumulation_steps == 1
    if script == "dit":
        stages = train_dit.parse_resolution_schedule(gpu)
        assert {side for _, side in stages} == {128, 256} and stages[-1][1] == gpu.sample_size
        assert train_dit.parse_resolution_schedule(cpu) == [(0, 64)]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_file_is_valid_for_its_script(path):
    """Every key of every recipe is an option of its script (the release run resumes with dit_release_cpu.yaml)."""
    cls = train_dit.DiTTrainingConfig if path.name.startswith("dit") else train_classifier.ClassifierTrainingConfig
    cfg = parse_config(cls, ["--config", str(path)])
    assert cfg.output_dir.startswith("outputs/")


def test_resolution_schedule_and_global_batch_checks():
    cfg = train_dit.DiTTrainingConfig(resolution_schedule="16@5, 8@0", patch_size=4)
    stages = train_dit.parse_resolution_schedule(cfg)
    assert [train_dit.side_at(stages, s) for s in (0, 4, 5, 99)] == [8, 8, 16, 16]
    with pytest.raises(ValueError, match="multiple of patch_size"):
        train_dit.parse_resolution_schedule(train_dit.DiTTrainingConfig(resolution_schedule="10@0"))
    with pytest.raises(ValueError, match="step 0"):
        train_dit.parse_resolution_schedule(train_dit.DiTTrainingConfig(resolution_schedule="8@3"))
    with pytest.raises(ValueError, match="global_batch_size"):
        accumulation_steps(train_dit.DiTTrainingConfig(global_batch_size=100, train_batch_size=32), 1)


def test_jpeg_draft_decoding_matches_full_decoding(cats):
    from tiny_cats.data import load_pets

    full = load_pets(str(cats))["train"]
    raw = full.cast_column("image", __import__("datasets").Image(decode=False))
    a = make_image_transform(16)(full[:4])["pixel_values"]
    b = make_image_transform(16, jpeg_draft=True)(raw[:4])["pixel_values"]
    assert all(x.shape == y.shape == (3, 16, 16) for x, y in zip(a, b))
    assert max((x - y).abs().mean().item() for x, y in zip(a, b)) < 0.05


# --- exact resume ----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_during_save_then_resume_is_bit_identical(cats, tmp_path):
    """A run killed with SIGKILL while writing checkpoint-4 resumes from checkpoint-2 (mid-epoch) and
    ends bit-identical to an uninterrupted run: weights, EMA, optimizer, scheduler, data order, losses.

    Exercises what a resume must restore: the seeded sampler order (Accelerate 1.15 writes no
    sampler.bin for map-style data; set_epoch + skip_first_batches rebuild it), accumulation over
    2 batches, a DataLoader worker, kornia crops, label dropout, progressive resizing across the
    resume point, a sample grid that reseeds the RNG, and keep-last-2 pruning.
    """
    extra = ["--train_batch_size", "2", "--gradient_accumulation_steps", "2", "--max_train_steps", "8",
             "--checkpointing_steps", "2", "--checkpoints_total_limit", "2", "--dataloader_num_workers", "1",
             "--augmentation", "crop_flip", "--class_dropout_prob", "0.5", "--resolution_schedule", "8@0,16@3",
             "--sample_every_steps", "5", "--sample_inference_steps", "1"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_dit(cats, straight, *extra)

    # Same thread count as this process: float reductions may split differently with more threads.
    env = {**child_env(tmp_path), "TINY_CATS_TEST_HANG": "save:4", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    command = [PYTHON, WITH_FAULTS, str(ROOT / "training" / "train_dit.py"), *dit_args(cats, broken, *extra)]
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = broken / ".hang-save-4"
    deadline = time.time() + 240
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "the child never reached the save of checkpoint-4"
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()

    assert (broken / ".checkpoint-4.tmp" / "model.safetensors").is_file()  # torn: written, never renamed
    assert [p.name for p in list_checkpoints(broken)] == ["checkpoint-2"]
    assert resolve_resume(broken, "latest") == broken / "checkpoint-2"
    progress = json.loads((broken / "checkpoint-2" / "training_config.json").read_text())["progress"]
    seconds_before_the_kill = progress.pop("train_seconds")
    assert progress == {"step": 2, "epoch": 0, "epoch_step": 2, "chunks": 1}  # mid-epoch: 4 steps per epoch

    run_dit(cats, broken, *extra, "--resume_from_checkpoint", "latest")
    assert [p.name for p in list_checkpoints(broken)] == ["checkpoint-6", "checkpoint-8"]
    assert not list(broken.glob(".checkpoint-*.tmp"))
    resumed = json.loads((broken / "checkpoint-8" / "training_config.json").read_text())["progress"]
    assert resumed["train_seconds"] > seconds_before_the_kill  # the resumed run adds to the clock
    assert_same_checkpoint(straight / "checkpoint-8", broken / "checkpoint-8")
    steps_a, final_a = read_trace(straight)
    steps_b, final_b = read_trace(broken)
    assert steps_a == steps_b  # per step: loss, lr, digest of the batches, batch shape
    assert final_a == final_b  # final weights and EMA digests
    assert [steps_a[s]["shape"][-1] for s in (1, 3, 4, 8)] == [8, 8, 16, 16]  # 8 px for steps 0-2, then 16 px
    meta = json.loads((broken / "checkpoint-8" / "training_config.json").read_text())
    assert meta["code_version"] and meta["config"]["max_train_steps"] == 8


def test_classifier_resume_with_ema_accumulation_and_advanced_augmentation(pet_folder, tmp_path):
    """Resuming the classifier from a mid-run checkpoint ends bit-identical to the uninterrupted run."""
    common = [*TINY_CLASSIFIER, "--data", str(pet_folder), "--train_batch_size", "2",
              "--gradient_accumulation_steps", "2", "--max_train_steps", "4", "--checkpointing_steps", "1",
              "--checkpoints_total_limit", "4",
              "--ema_decay", "0.9", "--augmentation", "advanced", "--pretrained", "false", "--limit_eval_samples", "2"]
    first, second = tmp_path / "first", tmp_path / "second"
    train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig,
                                       common + ["--output_dir", str(first), "--trace_dir", str(first)]))
    train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig,
                                       common + ["--output_dir", str(second), "--trace_dir", str(second),
                                                 "--resume_from_checkpoint", str(first / "checkpoint-3")]))
    assert_same_checkpoint(first / "checkpoint-4", second / "checkpoint-4")
    assert read_trace(first)[0][4] == read_trace(second)[0][4]
    assert read_trace(first)[1] == read_trace(second)[1]


def test_streamed_training_resumes_exactly(cats, tmp_path):
    """The sharded stream trains, caps its epochs and resumes mid-epoch to the same weights."""
    extra = ["--train_batch_size", "2", "--max_train_steps", "5", "--checkpointing_steps", "1",
             "--checkpoints_total_limit", "5", "--streaming_shards", "2", "--shuffle_buffer", "4"]
    cfg = parse_config(train_dit.DiTTrainingConfig, dit_args(cats, tmp_path / "a", *extra))
    assert stream_steps_per_epoch(17, cfg, 1, 1) == 8  # 2 shards of 8-9 rows, batches of 2
    run_dit(cats, tmp_path / "a", *extra)
    run_dit(cats, tmp_path / "b", *extra, "--resume_from_checkpoint", str(tmp_path / "a" / "checkpoint-3"))
    assert_same_checkpoint(tmp_path / "a" / "checkpoint-5", tmp_path / "b" / "checkpoint-5")
    assert read_trace(tmp_path / "a")[1] == read_trace(tmp_path / "b")[1]


# --- out-of-memory recovery ---------------------------------------------------------------------


def test_out_of_memory_halves_the_micro_batch_and_keeps_the_update(cats, tmp_path, monkeypatch):
    """Injected OOMs at micro-batches above 1 image: the step is redone as 4 pieces of 1, and the run
    matches an unfaulted one up to float rounding (same samples, same random draws, same effective batch)."""
    extra = ["--train_batch_size", "4", "--max_train_steps", "3", "--checkpointing_steps", "3"]
    run_dit(cats, tmp_path / "ok", *extra)
    inject_out_of_memory(monkeypatch, TinyDiTTransformer2DModel, larger_than=1, times=2)
    report = run_dit(cats, tmp_path / "oom", *extra)
    assert report["micro_batch_chunks"] == 4 and report["steps"] == 3
    progress = json.loads((tmp_path / "oom" / "checkpoint-3" / "training_config.json").read_text())["progress"]
    assert progress["chunks"] == 4  # a resume starts with the micro-batch that fitted
    ok, oom = read_trace(tmp_path / "ok")[0], read_trace(tmp_path / "oom")[0]
    assert [ok[s]["data"] for s in ok] == [oom[s]["data"] for s in oom]
    assert [ok[s]["loss"] for s in ok] == pytest.approx([oom[s]["loss"] for s in oom], rel=1e-5)
    a, b = load_weights(tmp_path / "ok", 3), load_weights(tmp_path / "oom", 3)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_out_of_memory_at_one_image_is_raised(cats, tmp_path, monkeypatch):
    inject_out_of_memory(monkeypatch, TinyDiTTransformer2DModel, larger_than=0, times=100)
    with pytest.raises(torch.OutOfMemoryError):
        run_dit(cats, tmp_path / "oom", "--train_batch_size", "2", "--max_train_steps", "1")


# --- mixed precision ----------------------------------------------------------------------------


@pytest.fixture
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_keeps_loss_weights_and_ema_in_fp32(cats, tmp_path, monkeypatch, fresh_accelerate_state):
    seen = []
    loss_fn = train_dit.velocity_loss

    def recording_loss(model, inputs):
        qkv = getattr(model, "module", model).blocks[0].qkv
        hook = qkv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
        loss = loss_fn(model, inputs)
        hook.remove()
        seen.append(loss.dtype)
        return loss

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    monkeypatch.setattr(train_dit, "velocity_loss", recording_loss)
    out = tmp_path / "bf16"
    report = run_dit(cats, out, "--max_train_steps", "2", "--checkpointing_steps", "2")
    assert seen == [torch.bfloat16, torch.float32] * 2  # matmuls under bf16 autocast, the loss in fp32
    assert math.isfinite(report["final_loss_mean_last_100"])
    weights = load_file(out / "checkpoint-2" / "model.safetensors")
    ema = load_pickle_state(out / "checkpoint-2" / "custom_checkpoint_0.pkl")["shadow_params"]
    assert all(t.dtype == torch.float32 for t in [*weights.values(), *ema])
    saved = load_file(out / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in saved.values())


# --- two processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_keep_weights_in_sync_and_match_one_process(cats, tmp_path):
    """2 gloo processes x micro-batch 2 x accumulation 2 == 1 process x micro-batch 2 x accumulation 4.

    Process 1 also runs out of memory at its first forward: both processes agree to redo the
    step in pieces of 1 image, and the run still matches. CPU multi-process goes through
    `accelerate launch --multi_gpu` (torchrun) with ACCELERATE_USE_CPU=true: `--cpu
    --num_processes 2` starts a single process, and without the variable each torchrun process
    would train alone.
    """
    extra = ["--train_batch_size", "2", "--global_batch_size", "8", "--max_train_steps", "6",
             "--checkpointing_steps", "6", "--ema_decay", "0.9"]
    one, two = tmp_path / "one", tmp_path / "two"
    run_dit(cats, one, *extra)
    env = {**child_env(tmp_path), "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TINY_CATS_TEST_OOM": "1:1@1"}
    command = [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
               WITH_FAULTS, str(ROOT / "training" / "train_dit.py"), *dit_args(cats, two, *extra)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    (steps0, final0), (steps1, final1) = read_trace(two, 0), read_trace(two, 1)
    assert final0 == final1, "gradients were not synchronised: the ranks ended with different weights"
    assert steps0[1]["data"] != steps1[1]["data"]  # each rank trained on its own half of the batch
    assert [steps0[s]["loss"] for s in steps0] == [steps1[s]["loss"] for s in steps1]  # the reduced mean
    single, _ = read_trace(one)
    assert [single[s]["loss"] for s in single] == pytest.approx([steps0[s]["loss"] for s in steps0], rel=1e-4)
    a, b = load_weights(one, 6), load_weights(two, 6)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    results = json.loads((two / "final" / "training_results.json").read_text())
    assert results["steps"] == 6 and results["micro_batch_chunks"] == 2 and results["config"]["global_batch_size"] == 8


def test_train_state_round_trips_through_json():
    state = TrainState(step=7, epoch=1, epoch_step=3, chunks=2)
    assert TrainState(**json.loads(json.dumps(state.__dict__))) == state


def test_throughput_benchmark_runs_with_tiny_settings(tmp_path, monkeypatch):
    from .test_training import load_script

    bench = load_script("benchmark_throughput")
    out = tmp_path / "throughput.json"
    tiny = ["--image_size", "16", "--hidden_size", "32", "--num_layers", "1", "--num_attention_heads", "2",
            "--batch_size", "4", "--peak_size", "128", "--data", str(tmp_path / "none"), "--loader_workers", "0", "--quick"]
    report = bench.main([*tiny, "--output", str(out)])
    assert json.loads(out.read_text()) == report
    monkeypatch.chdir(tmp_path)
    bench.main(tiny)  # a smoke test without --output leaves the committed benchmarks/ alone
    assert not (tmp_path / "benchmarks").exists()
    for model in report["models"].values():
        assert model["images_per_s"] > 0 and 0 < model["share_of_peak"] and model["gflops_per_image_fwd_bwd"] > 0
    assert report["models"]["diffusers_dit"]["parameters"] > 0 and len(report["input_pipeline"]["runs"]) == 2


def test_throughput_benchmark_times_the_release_design_under_bf16(tmp_path):
    from .test_training import load_script

    bench = load_script("benchmark_throughput")
    tiny = ["--image_size", "16", "--hidden_size", "32", "--num_layers", "2", "--num_attention_heads", "2",
            "--batch_size", "4", "--peak_size", "128", "--data", str(tmp_path / "none"), "--loader_workers", "0", "--quick"]
    plain = bench.main(tiny + ["--output", str(tmp_path / "plain.json")])
    release = bench.main(tiny + ["--long_skip", "--final_conv", "--prediction_type", "sample", "--bf16",
                                 "--output", str(tmp_path / "release.json")])
    # The skips' fusing linear and the 3x3 conv are extra parameters; the baseline is unchanged.
    assert release["models"]["tiny_dit"]["parameters"] > plain["models"]["tiny_dit"]["parameters"]
    assert release["models"]["diffusers_dit"]["parameters"] == plain["models"]["diffusers_dit"]["parameters"]
    assert release["matmul_peak_gflops_bf16"] > 0 and "matmul_peak_gflops_bf16" not in plain
    assert release["settings"]["bf16"] is True and release["models"]["tiny_dit"]["images_per_s"] > 0
