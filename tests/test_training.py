"""The Accelerate training scripts, on made-up images with tiny settings."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tiny_cats import TinyCatsForImageClassification
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline
from tiny_cats.training.checkpoints import list_checkpoints
from tiny_cats.training.config import parse_config

from .conftest import PYTHON, ROOT, child_env


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


train_classifier = load_script("train_classifier")
train_dit = load_script("train_dit")

TINY_DIT = ["--sample_size", "16", "--patch_size", "4", "--hidden_size", "32", "--num_layers", "2",
            "--num_attention_heads", "2", "--train_batch_size", "4", "--report_to", "none",
            "--dataloader_num_workers", "0", "--sample_every_steps", "0", "--warmup_steps", "1"]
TINY_CLASSIFIER = ["--image_size", "32", "--train_batch_size", "4", "--eval_batch_size", "8", "--report_to", "none",
                   "--dataloader_num_workers", "0", "--warmup_steps", "1"]


def test_config_file_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 0.5\nmax_train_steps: 7\n")
    cfg = parse_config(train_classifier.ClassifierTrainingConfig, ["--config", str(tmp_path / "c.yaml"), "--max_train_steps", "9"])
    assert cfg.learning_rate == 0.5 and cfg.max_train_steps == 9
    (tmp_path / "bad.yaml").write_text("learning_rat: 0.5\n")
    with pytest.raises(ValueError, match=r"unknown keys in .*bad.yaml: \['learning_rat'\]"):
        parse_config(train_classifier.ClassifierTrainingConfig, ["--config", str(tmp_path / "bad.yaml")])
    # YAML reads 1e-3 (no dot) as a string: it goes through the flag's converter like --learning_rate 1e-3
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-3\ntest_time_flip: yes\nmax_train_steps: 7\n")
    cfg = parse_config(train_classifier.ClassifierTrainingConfig, ["--config", str(tmp_path / "c.yaml")])
    assert (cfg.learning_rate, cfg.test_time_flip, cfg.max_train_steps) == (0.001, True, 7)
    for text, error in (("max_train_steps: 2.5\n", "max_train_steps: 2.5 is not an integer"),
                        ("test_time_flip: maybe\n", "test_time_flip: 'maybe' is not true or false"),
                        ("learning_rate: [1, 2\n", "is not valid YAML"), ("- 1\n", "must hold `option: value` lines")):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ValueError, match=error):
            parse_config(train_classifier.ClassifierTrainingConfig, ["--config", str(tmp_path / "bad.yaml")])
    with pytest.raises(FileNotFoundError, match="no config file"):
        parse_config(train_classifier.ClassifierTrainingConfig, ["--config", str(tmp_path / "typo.yaml")])


def test_classifier_trains_saves_and_resumes(pet_folder, tmp_path):
    out = tmp_path / "clf"
    args = ["--data", str(pet_folder), "--output_dir", str(out), "--checkpointing_steps", "2", *TINY_CLASSIFIER]
    metrics = train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig, args + ["--max_train_steps", "2"]))
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["num_images"] == 5 + 1  # one test image per breed + a duplicate
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
    config = json.loads((out / "checkpoint-2" / "training_config.json").read_text())
    assert config["step"] == 2 and config["config"]["image_size"] == 32
    train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig,
                                       args + ["--max_train_steps", "4", "--resume_from_checkpoint", "latest"]))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    model = TinyCatsForImageClassification.from_pretrained(out / "final")
    assert model.config.image_size == 32
    results = json.loads((out / "final" / "training_results.json").read_text())
    assert results["steps"] == 4


def test_dit_trains_with_ema_and_saves_a_pipeline(pet_folder, tmp_path):
    out = tmp_path / "dit"
    cfg = parse_config(train_dit.DiTTrainingConfig,
                       ["--data", str(pet_folder), "--output_dir", str(out), "--max_train_steps", "3",
                        "--checkpointing_steps", "2", "--ema_decay", "0.5", *TINY_DIT])
    report = train_dit.main(cfg)
    assert report["steps"] == 3 and report["final_loss_mean_last_100"] > 0
    assert report["epochs"] == round(3 / (report["num_train_images"] // 4), 2)  # steps / steps per epoch (batch 4)
    pipe = TinyDiTPipeline.from_pretrained(out / "final")
    pipe.set_progress_bar_config(disable=True)
    images = pipe("Abyssinian", num_inference_steps=2, output_type="np").images
    assert images.shape == (1, 16, 16, 3)
    assert (out / "samples" / "final.png").is_file()
    assert (out / "checkpoint-3" / "custom_checkpoint_0.pkl").is_file()  # the EMA state

    # A checkpoint's EMA exported mid-run is the very pipeline the run saves at its end.
    export = load_script("export_dit_checkpoint")
    assert export.export(cfg, "checkpoint-3", tmp_path / "ema") == 3
    exported = TinyDiTPipeline.from_pretrained(tmp_path / "ema").transformer.state_dict()
    final = pipe.transformer.state_dict()
    assert exported.keys() == final.keys() and all(torch.equal(exported[k], final[k]) for k in final)
    assert not (tmp_path / "ema.partial").exists()
    assert json.loads((tmp_path / "ema" / "training_results.json").read_text())["config"]["train_splits"] == "train"
    with pytest.raises(SystemExit, match="no checkpoint with an EMA state"):
        export.export(cfg, "checkpoint-99", tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    assert export.export(cfg, "latest", tmp_path / "ema") == 3  # a previous export is replaced
    with pytest.raises(SystemExit, match="is not a pipeline folder; refusing to replace it"):
        export.export(cfg, "latest", out)  # the run's own folder (a slip for out / "ema-latest")
    assert (out / "checkpoint-3").is_dir()


def test_flow_matching_loss_target():
    """With a model that outputs exactly noise - x0 the loss is zero: the target is the velocity."""
    cfg = train_dit.DiTTrainingConfig(class_dropout_prob=0.0)
    images = torch.rand(4, 3, 8, 8) * 2 - 1

    class Oracle(torch.nn.Module):
        def forward(self, noisy, timestep, labels):
            t = (timestep / 1000).view(-1, 1, 1, 1)
            return type("Out", (), {"sample": (noisy - images) / t})()  # = noise - x0 on the straight path

    loss = train_dit.flow_matching_loss(Oracle(), images, torch.zeros(4, dtype=torch.long), cfg, null_id=12)
    assert loss.item() < 1e-8


def test_time_budget_stops_and_saves(pet_folder, tmp_path):
    out = tmp_path / "dit"
    cfg = parse_config(train_dit.DiTTrainingConfig,
                       ["--data", str(pet_folder), "--output_dir", str(out), "--max_train_steps", "1000",
                        "--max_train_minutes", "0.0001", "--checkpointing_steps", "500", *TINY_DIT])
    report = train_dit.main(cfg)
    assert report["steps"] < 1000
    assert list_checkpoints(out) and (out / "final" / "model_index.json").is_file()


@pytest.mark.slow
def test_accelerate_launch_runs_the_dit_script(pet_folder, tmp_path):
    out = tmp_path / "launched"
    command = [PYTHON, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "training" / "train_dit.py"),
               "--data", str(pet_folder), "--output_dir", str(out), "--max_train_steps", "2", *TINY_DIT]
    env = child_env(tmp_path)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "final" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()


def test_dit_release_options_train_on_packed_cats_progressively(pet_folder, tmp_path):
    """U-ViT skips, final conv, x-prediction, warm-up EMA, every cat split, packed arrays, 8 px then 16 px."""
    out, packed = tmp_path / "dit", tmp_path / "packed"
    cfg = parse_config(train_dit.DiTTrainingConfig,
                       ["--data", str(pet_folder), "--output_dir", str(out), "--max_train_steps", "4",
                        "--checkpointing_steps", "2", "--long_skip", "true", "--final_conv", "true",
                        "--prediction_type", "sample", "--ema_power", "0.75", "--ema_decay", "0.9999",
                        "--train_splits", "train,test", "--packed_data_dir", str(packed), "--holdout_per_breed", "1",
                        "--resolution_schedule", "8@0,16@2", *TINY_DIT[:-2], "--sample_every_steps", "1",
                        "--sample_inference_steps", "2", "--scheduler_shift", "2"])
    report = train_dit.main(cfg)
    for name, side in (("step-000001.png", 8), ("step-000003.png", 16), ("final.png", 16)):  # drawn at the side trained
        with Image.open(out / "samples" / name) as grid:
            assert grid.size == (6 * side, 2 * side)
    assert report["steps"] == 4 and report["num_train_images"] == 9  # 3 breeds x 4 made-up cats, 1 per breed held out
    assert sorted(p.name for p in packed.iterdir()) == ["cats_train+test-holdout1_16px.npz", "cats_train+test-holdout1_8px.npz"]
    config = json.loads((out / "final" / "transformer" / "config.json").read_text())
    assert config["long_skip"] and config["final_conv"] and config["prediction_type"] == "sample"
    pipe = TinyDiTPipeline.from_pretrained(out / "final")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.shift == 2.0  # the sampling shift chosen by the sweep travels with the weights
    assert pipe("Bengal", num_inference_steps=2, output_type="np").images.shape == (1, 16, 16, 3)


# ----------------------------------------------------------------------------- user-facing behaviour


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse_config(train_classifier.ClassifierTrainingConfig, ["--learning_rat", "0.1"])
    assert "unrecognized arguments: --learning_rat" in capsys.readouterr().err


def test_resume_latest_without_checkpoint_says_so(tmp_path, caplog):
    from types import SimpleNamespace

    from tiny_cats.training.checkpoints import resume

    cfg = train_dit.DiTTrainingConfig(output_dir=str(tmp_path), resume_from_checkpoint="latest")
    with caplog.at_level("WARNING", logger="tiny_cats.training.checkpoints"):
        state = resume(SimpleNamespace(is_main_process=True), cfg, 10)
    assert state.step == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"--resume_from_checkpoint latest: no checkpoint in {tmp_path}, starting from scratch"]


def test_checkpointing_note():
    from tiny_cats.training.accelerator import checkpointing_note

    cfg = train_classifier.ClassifierTrainingConfig(max_train_steps=20, checkpointing_steps=250)
    assert "the only checkpoint is written at the end" in checkpointing_note(cfg)
    assert checkpointing_note(train_classifier.ClassifierTrainingConfig(max_train_steps=20, checkpointing_steps=5)) is None


def test_safetensors_get_normal_file_modes(tmp_path):
    import os

    from safetensors.torch import save_file

    from tiny_cats.training.checkpoints import fix_file_modes, normal_file_mode

    (tmp_path / "sub").mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "sub" / "m.safetensors")  # safetensors makes it 0600
    fix_file_modes(tmp_path)
    assert (os.stat(tmp_path / "sub" / "m.safetensors").st_mode & 0o777) == normal_file_mode() == 0o666 & ~_umask()


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_wrong_data_path_is_one_line(tmp_path):
    done = subprocess.run([PYTHON, str(ROOT / "training" / "train_classifier.py"), "--data", str(tmp_path / "absent"),
                           "--output_dir", str(tmp_path / "out"), "--report_to", "none"],
                          capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert lines[-1].startswith("train_classifier.py: error: ") and "absent: no such folder" in lines[-1]
    assert not any("Multiple distributions" in line for line in lines)

    (tmp_path / "typo.yaml").write_text("learning_rate: fast\n")  # a config error is one line too
    done = subprocess.run([PYTHON, str(ROOT / "training" / "train_classifier.py"), "--config", str(tmp_path / "typo.yaml")],
                          capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("train_classifier.py: error: ") and "'fast' is not a number" in done.stderr


def sigterm_during_step(monkeypatch, script, step):
    """Send this process SIGTERM while the script draws the random inputs of step ``step`` (1-based)."""
    import os
    import signal

    reseed = script.reseed

    def reseed_then_signal(seed, step_index, micro_batch):
        if step_index == step - 1 and micro_batch == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        reseed(seed, step_index, micro_batch)

    monkeypatch.setattr(script, "reseed", reseed_then_signal)


def test_sigterm_checkpoints_then_resume_continues(pet_folder, tmp_path, monkeypatch):
    import signal

    from tiny_cats.training.checkpoints import normal_file_mode
    from tiny_cats.training.stopping import TrainingStopped

    out = tmp_path / "clf"
    args = ["--data", str(pet_folder), "--output_dir", str(out), "--checkpointing_steps", "100", *TINY_CLASSIFIER]
    with monkeypatch.context() as patch:
        sigterm_during_step(patch, train_classifier, 2)
        with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 2") as info:
            train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig,
                                               args + ["--max_train_steps", "5"]))
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
    train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig,
                                       args + ["--max_train_steps", "3", "--resume_from_checkpoint", "latest"]))
    assert json.loads((out / "final" / "training_results.json").read_text())["steps"] == 3
    modes = {p.stat().st_mode & 0o777 for p in out.rglob("*.safetensors")}
    assert modes == {normal_file_mode()}


def test_dit_sigterm_checkpoints_then_resume_continues(pet_folder, tmp_path, monkeypatch):
    import signal

    from tiny_cats.training.checkpoints import normal_file_mode
    from tiny_cats.training.stopping import TrainingStopped

    out = tmp_path / "dit"
    args = ["--data", str(pet_folder), "--output_dir", str(out), "--checkpointing_steps", "100", *TINY_DIT]
    with monkeypatch.context() as patch:
        sigterm_during_step(patch, train_dit, 2)
        with pytest.raises(TrainingStopped, match="stopped by SIGTERM at step 2"):
            train_dit.main(parse_config(train_dit.DiTTrainingConfig, args + ["--max_train_steps", "5"]))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]
    report = train_dit.main(parse_config(train_dit.DiTTrainingConfig,
                                         args + ["--max_train_steps", "3", "--resume_from_checkpoint", "latest"]))
    assert report["steps"] == 3
    assert {p.stat().st_mode & 0o777 for p in (out / "final").rglob("*.safetensors")} == {normal_file_mode()}


@pytest.mark.slow
def test_sigterm_in_a_launched_run_exits_with_128_plus_signal(pet_folder, tmp_path):
    """The script's own exit: one line saying where it stopped, status 128 + 15, a checkpoint to resume from."""
    import signal
    import time

    out = tmp_path / "dit"
    command = [PYTHON, str(ROOT / "training" / "train_dit.py"), "--data", str(pet_folder), "--output_dir", str(out),
               "--max_train_steps", "100000", "--checkpointing_steps", "100000", "--trace_dir", str(out), *TINY_DIT]
    child = subprocess.Popen(command, env=child_env(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "trace-rank0.jsonl").exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.2)  # until the first step is done
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=240)
    assert child.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("train_dit.py: stopped by SIGTERM at step ") and "--resume_from_checkpoint latest" in last
    assert len(list_checkpoints(out)) == 1
