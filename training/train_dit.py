"""Train TinyDiT, the class-conditional cat generator, with Accelerate.

    accelerate launch training/train_dit.py --config training/configs/dit_cpu.yaml
    accelerate launch --config_file training/accelerate/multi_gpu.yaml training/train_dit.py --config training/configs/dit_gpu.yaml

Objective: rectified flow (flow matching with a straight path). A training pair is
x_t = (1 - t) * x_0 + t * noise with t in (0, 1); the network predicts the velocity
v = noise - x_0, the same quantity at every t, so the loss needs no per-timestep weighting
and the target never blows up near t = 0 or 1 as epsilon- or x0-prediction does in pixel
space. t is drawn from a logit-normal(0, 1) (Esser et al., 2024): it concentrates training on
middle noise levels, where the prediction is hardest and matters most for a small model,
while still visiting the ends. Sampling uses diffusers' FlowMatchEulerDiscreteScheduler,
whose sigma is this t (timestep = 1000 * t). Labels are replaced by the null label with
probability ``class_dropout_prob`` so one network learns the unconditional prediction that
classifier-free guidance needs.

Augmentation is a horizontal flip (``augmentation: flip``), optionally with a mild square
random-resized crop (``crop_flip``: 80-100% of the area, no change of aspect): rotations,
colour jitter or stronger crops would teach the generator to draw rotated, off-colour or
cut-off cats. EMA weights (fp32, updated after each optimizer step) are what ``final/`` holds.

Multi-scale training is progressive resizing (``resolution_schedule: "128@0,256@240000"``):
every batch of a step has one side, chosen by the step. Low resolution first is where most
of the cheap learning of shape and layout happens (4x fewer tokens per image at 128 than at
256); the last phase adapts to the full side. Buckets (a random side per batch) would buy
nothing here, since all images are square, and would change tensor shapes at every step
(allocator churn, recompilation under torch.compile, processes waiting on the slowest
bucket). A step-indexed schedule is also exactly reproducible on resume. Each side has its
own DataLoader, which decodes straight to that side (with ``jpeg_draft`` at reduced JPEG
scale), so the 128 phase does not pay for 256-pixel decoding.

Mixed precision comes from ``accelerate launch --mixed_precision`` (or the accelerate config):
Accelerate runs the forward under autocast; the loss is computed in fp32 and the weights,
optimizer state and EMA stay fp32.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import tiny_cats  # noqa: F401  (first: its log filter hides optimum's import notice)

# isort: split
import kornia.augmentation as K
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from datasets import concatenate_datasets
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers import get_scheduler

from tiny_cats.classifier.labels import CAT_BREEDS
from tiny_cats.data import PackedCats, cats_only, generator_holdout, load_pets, packed_cats_file
from tiny_cats.files import staged_folder
from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline, images_to_grid
from tiny_cats.training.accelerator import any_process, make_accelerator
from tiny_cats.training.checkpoints import TrainState, fix_file_modes, resume, save_checkpoint
from tiny_cats.training.config import TrainingConfig, parse_config
from tiny_cats.training.loaders import collate, epoch_windows, make_train_loader, stream_steps_per_epoch
from tiny_cats.training.memory import OutOfMemoryRetry
from tiny_cats.training.reproducibility import StepTrace, reseed, tensor_digest, weights_digest
from tiny_cats.training.stopping import StopOnSignal, exit_on_stop_or_error, stop_with_checkpoint

logger = logging.getLogger("train_dit")


@dataclass
class DiTTrainingConfig(TrainingConfig):
    """Options of train_dit.py (YAML keys or --flags); the shared ones are in tiny_cats/training/config.py."""

    output_dir: str = "outputs/dit"
    sample_size: int = 64
    patch_size: int = 4
    hidden_size: int = 192
    num_layers: int = 6
    num_attention_heads: int = 3
    long_skip: bool = False  # U-ViT long skip connections (see modeling_tiny_dit.py)
    final_conv: bool = False  # 3x3 convolution after unpatchify
    prediction_type: str = "velocity"  # velocity | sample (x-prediction, trained with the velocity loss)
    train_splits: str = "train"  # the generator has no test split to protect: "train,test" uses every cat
    holdout_per_breed: int = 0  # cats kept out of training (tiny_cats.data.generator_holdout) to measure memorisation
    packed_data_dir: str = ""  # if set: cats packed once per side into .npz files here (no decoding while training)
    max_train_minutes: float = 0.0  # stop early (and save) after this wall-clock budget; 0 = no limit
    ema_decay: float = 0.999  # with ema_power > 0: the maximum decay
    ema_power: float = 0.0  # > 0: warm-up EMA, decay = 1 - (1 + step) ** -ema_power (diffusers EMAModel)
    class_dropout_prob: float = 0.1
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    resolution_schedule: str = ""  # "SIDE@STEP,...", e.g. "128@0,256@240000"; "" = sample_size throughout
    augmentation: str = "flip"  # flip | crop_flip
    scheduler_shift: float = 1.0  # the saved pipeline's FlowMatchEulerDiscreteScheduler shift (training/sweep_sampler.py)
    sample_every_steps: int = 500
    sample_inference_steps: int = 25
    sample_guidance_scale: float = 4.0


def parse_resolution_schedule(cfg: DiTTrainingConfig) -> List[Tuple[int, int]]:
    """``"128@0,256@240000"`` -> [(0, 128), (240000, 256)]: the side used from each step on."""
    if not cfg.resolution_schedule.strip():
        return [(0, cfg.sample_size)]
    stages = []
    for item in cfg.resolution_schedule.split(","):
        side, _, start = item.strip().partition("@")
        stages.append((int(start or 0), int(side)))
    stages.sort()
    if stages[0][0] != 0:
        raise ValueError(f"resolution_schedule {cfg.resolution_schedule!r} must start at step 0")
    if any(side % cfg.patch_size for _, side in stages):
        raise ValueError(f"every side in {cfg.resolution_schedule!r} must be a multiple of patch_size {cfg.patch_size}")
    return stages


def side_at(stages: List[Tuple[int, int]], step: int) -> int:
    return [side for start, side in stages if start <= step][-1]


def augment_for_generation(images: torch.Tensor, kind: str) -> torch.Tensor:
    """Horizontal flip; ``crop_flip`` first takes a random square crop of 80-100% of the area, resized back."""
    if kind == "crop_flip":
        images = K.RandomResizedCrop(tuple(images.shape[-2:]), scale=(0.8, 1.0), ratio=(1.0, 1.0), p=1.0)(images)
    elif kind != "flip":
        raise ValueError(f"augmentation must be flip or crop_flip, not {kind!r}")
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def flow_matching_inputs(images: torch.Tensor, labels: torch.Tensor, cfg: DiTTrainingConfig,
                         null_id: int) -> Dict[str, torch.Tensor]:
    """A rectified-flow training batch at logit-normal times; labels dropped to null for CFG."""
    noise = torch.randn_like(images)
    t = torch.sigmoid(cfg.logit_normal_mean + cfg.logit_normal_std * torch.randn(images.shape[0], device=images.device))
    noisy = (1 - t.view(-1, 1, 1, 1)) * images + t.view(-1, 1, 1, 1) * noise
    drop = torch.rand(labels.shape[0], device=labels.device) < cfg.class_dropout_prob
    labels = torch.where(drop, torch.full_like(labels, null_id), labels)
    return {"noisy": noisy, "timestep": t * 1000.0, "labels": labels, "target": noise - images}


def velocity_loss(model, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    """MSE to the velocity, in fp32 even when the forward ran under bf16/fp16 autocast."""
    velocity = model(inputs["noisy"], inputs["timestep"], inputs["labels"]).sample
    return F.mse_loss(velocity.float(), inputs["target"].float())


def flow_matching_loss(model, images: torch.Tensor, labels: torch.Tensor, cfg: DiTTrainingConfig, null_id: int):
    """Rectified-flow velocity loss at logit-normal times; labels dropped to null for CFG."""
    return velocity_loss(model, flow_matching_inputs(images, labels, cfg, null_id))


def build_pipeline(transformer: TinyDiTTransformer2DModel, shift: float = 1.0) -> TinyDiTPipeline:
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    return TinyDiTPipeline(transformer=transformer, scheduler=scheduler, id2label=dict(enumerate(CAT_BREEDS)))


def ema_state_dict(accelerator, model, ema: EMAModel) -> dict:
    """The full EMA weights however the model is wrapped or sharded (DDP, FSDP, DeepSpeed).

    The EMA is swapped into the live parameters, Accelerate gathers a full state dict (a
    collective under FSDP and DeepSpeed, so every process calls this), and the live weights
    are swapped back.
    """
    params = list(accelerator.unwrap_model(model).parameters())
    ema.store(params)
    ema.copy_to(params)
    # A state dict shares storage with the parameters: clone it, or restore() overwrites it with the live weights.
    state = {name: tensor.detach().clone() for name, tensor in accelerator.get_state_dict(model).items()}
    ema.restore(params)
    return state


def model_from_state(config, state: dict) -> TinyDiTTransformer2DModel:
    model = TinyDiTTransformer2DModel.from_config(config)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def save_sample_grid(transformer: TinyDiTTransformer2DModel, path: Path, cfg: DiTTrainingConfig, side: int) -> None:
    """One image per breed at ``side`` (the side being trained: the model works at any multiple of
    its patch), fixed seed, as a 6-column PNG."""
    transformer.register_to_config(sample_size=side)
    pipe = build_pipeline(transformer, cfg.scheduler_shift)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(list(CAT_BREEDS), num_inference_steps=cfg.sample_inference_steps,
                  guidance_scale=cfg.sample_guidance_scale, generator=torch.manual_seed(cfg.seed)).images
    path.parent.mkdir(parents=True, exist_ok=True)
    images_to_grid(images, columns=6).save(path)


def sample_ema(accelerator, model, ema: EMAModel, path: Path, cfg: DiTTrainingConfig, side: int) -> dict:
    """A sample grid at ``side`` from the EMA weights (all processes call it; the main one draws). Returns the EMA state."""
    state = ema_state_dict(accelerator, model, ema)
    if accelerator.is_main_process:
        save_sample_grid(model_from_state(accelerator.unwrap_model(model).config, state), path, cfg, side)
    return state


def build_model(cfg: DiTTrainingConfig) -> TinyDiTTransformer2DModel:
    set_seed(cfg.seed)
    return TinyDiTTransformer2DModel(
        sample_size=cfg.sample_size, patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers, num_attention_heads=cfg.num_attention_heads, num_classes=len(CAT_BREEDS),
        long_skip=cfg.long_skip, final_conv=cfg.final_conv, prediction_type=cfg.prediction_type,
    )


def make_ema(accelerator, model, decay: float, power: float = 0.0) -> EMAModel:
    """EMA of the parameters as the prepared model holds them (its shard under FSDP), kept in fp32:
    at decay 0.9999 the per-step change is far below bf16 resolution (DeepSpeed keeps bf16 module weights)."""
    transformer = accelerator.unwrap_model(model)
    warmup = dict(use_ema_warmup=True, inv_gamma=1.0, power=power) if power > 0 else {}
    ema = EMAModel(transformer.parameters(), decay=decay, model_cls=TinyDiTTransformer2DModel,
                   model_config=transformer.config, **warmup)
    ema.to(dtype=torch.float32)
    return ema


def make_loaders(cfg: DiTTrainingConfig, sides: List[int], accelerator):
    """One training DataLoader per side (each decodes straight to its side), and the number of cat photos."""
    splits = tuple(s.strip() for s in cfg.train_splits.split(","))
    if cfg.packed_data_dir:
        with accelerator.main_process_first():  # one process packs, the others read
            packed = [PackedCats(packed_cats_file(cfg.data, side, splits, cfg.packed_data_dir, cfg.holdout_per_breed))
                      for side in sides]
        loaders = [torch.utils.data.DataLoader(data, batch_size=cfg.train_batch_size, shuffle=True, drop_last=True,
                                               collate_fn=collate) for data in packed]
        return loaders, len(packed[0])
    pets = load_pets(cfg.data)
    train_set = cats_only(concatenate_datasets([pets[name] for name in splits]))
    if cfg.holdout_per_breed:
        held = generator_holdout(train_set["file"], train_set["label"], cfg.holdout_per_breed)
        train_set = train_set.filter(lambda f: f not in held, input_columns="file")
    if cfg.limit_train_samples:
        train_set = train_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_train_samples, len(train_set))))
    return [make_train_loader(train_set, cfg, side) for side in sides], len(train_set)


def main(cfg: DiTTrainingConfig) -> dict:
    output_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    accumulation = accelerator.gradient_accumulation_steps

    stages = parse_resolution_schedule(cfg)
    sides = sorted({side for _, side in stages})
    loaders, num_images = make_loaders(cfg, sides, accelerator)
    model = build_model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(  # Accelerate steps a prepared scheduler once per process
        cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes)
    model, optimizer, scheduler, *loaders = accelerator.prepare(model, optimizer, scheduler, *loaders)
    loader_of_side = dict(zip(sides, loaders))
    ema = make_ema(accelerator, model, cfg.ema_decay, cfg.ema_power)
    accelerator.register_for_checkpointing(ema)  # the only custom object: checkpoints hold custom_checkpoint_0.pkl
    if accelerator.is_main_process:
        accelerator.init_trackers("dit", config={k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})

    if cfg.streaming_shards:
        steps_per_epoch = stream_steps_per_epoch(num_images, cfg, accelerator.num_processes, accumulation)
    else:
        steps_per_epoch = len(loaders[0]) // accumulation
    state = resume(accelerator, cfg, steps_per_epoch)
    logger.info("torch uses %d threads; %d training images; sides %s", torch.get_num_threads(), num_images, sides)
    null_id = accelerator.unwrap_model(model).null_class_id
    oom = OutOfMemoryRetry(accelerator, model, state.chunks)
    trace = StepTrace(cfg.trace_dir, accelerator.process_index)
    progress = tqdm(total=cfg.max_train_steps, initial=state.step, desc="train", disable=not accelerator.is_main_process)
    started, earlier, losses, out_of_time = time.time(), state.train_seconds, [], False
    with StopOnSignal() as stop, progress:  # SIGTERM / Ctrl-C: finish the step, checkpoint, exit
        while state.step < cfg.max_train_steps and not out_of_time:
            side = side_at(stages, state.step)  # progressive resizing: the side of this step's batches
            for window in epoch_windows(accelerator, loader_of_side[side], state, accumulation,
                                        steps_per_epoch if cfg.streaming_shards else 0):
                for _ in oom.attempts():  # once; again in smaller pieces after running out of memory
                    loss = torch.zeros((), device=accelerator.device)
                    for j, batch in enumerate(window):  # the step's micro-batches, gradients accumulated
                        reseed(cfg.seed, state.step, j * accelerator.num_processes + accelerator.process_index)
                        images = augment_for_generation(batch["pixel_values"] * 2 - 1, cfg.augmentation)
                        inputs = flow_matching_inputs(images, batch["labels"], cfg, null_id)
                        with accelerator.accumulate(model):
                            loss += oom.backward(velocity_loss, inputs) / len(window)
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                state.step, state.epoch_step, state.chunks = state.step + 1, state.epoch_step + 1, oom.chunks
                state.train_seconds = earlier + time.time() - started
                if not optimizer.step_was_skipped:  # fp16 overflow: no update, so no EMA step either
                    ema.step(accelerator.unwrap_model(model).parameters())

                loss, lr = accelerator.reduce(loss, "mean").item(), scheduler.get_last_lr()[0]
                losses.append(loss)
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.4f}")
                accelerator.log({"train/loss": loss, "train/lr": lr, "train/side": side}, step=state.step)
                trace.step(state.step, loss, lr, window)
                spent = time.time() - started > 60 * cfg.max_train_minutes
                out_of_time = bool(cfg.max_train_minutes) and any_process(accelerator, spent)  # all stop together
                if state.step % cfg.checkpointing_steps == 0 or state.step == cfg.max_train_steps or out_of_time:
                    save_checkpoint(accelerator, cfg, state)
                if cfg.sample_every_steps and state.step % cfg.sample_every_steps == 0:
                    sample_ema(accelerator, model, ema, output_dir / "samples" / f"step-{state.step:06d}.png", cfg, side)
                if state.step < cfg.max_train_steps and not out_of_time and stop.requested(accelerator):
                    stop_with_checkpoint(accelerator, cfg, state, stop)
                if state.step == cfg.max_train_steps or out_of_time or side_at(stages, state.step) != side:
                    break
            else:
                state.next_epoch()
    if out_of_time and state.step < cfg.max_train_steps:
        logger.info("time budget of %.1f min spent at step %d; saved", cfg.max_train_minutes, state.step)
    return finish(accelerator, model, ema, cfg, state, losses, time.time() - started, num_images, trace, steps_per_epoch)


def finish(accelerator, model, ema: EMAModel, cfg: DiTTrainingConfig, state: TrainState, losses, seconds: float,
           num_images: int, trace: StepTrace, steps_per_epoch: int) -> dict:
    """Save the EMA pipeline, the report and a sample grid; record weight digests in the trace."""
    output_dir = Path(cfg.output_dir)
    report = {"steps": state.step, "epochs": state.epochs_seen(steps_per_epoch), "micro_batch_chunks": state.chunks,
              "train_seconds_this_run": round(seconds, 1), "train_seconds": round(state.train_seconds, 1),
              "final_loss_mean_last_100": sum(losses[-100:]) / max(len(losses[-100:]), 1),
              "num_train_images": num_images, "config": dataclasses.asdict(cfg)}
    ema_state = sample_ema(accelerator, model, ema, output_dir / "samples" / "final.png", cfg, cfg.sample_size)
    trace.write(final_weights=weights_digest(accelerator.unwrap_model(model)),
                final_ema=tensor_digest(ema_state[k] for k in sorted(ema_state)))
    if accelerator.is_main_process:
        final_model = model_from_state(accelerator.unwrap_model(model).config, ema_state)
        with staged_folder(output_dir / "final") as final:  # a crash leaves the previous final/ (or none)
            build_pipeline(final_model, cfg.scheduler_shift).save_pretrained(final)
            fix_file_modes(final)
            (final / "training_results.json").write_text(json.dumps(report, indent=2))
    accelerator.end_training()
    return report


if __name__ == "__main__":
    with exit_on_stop_or_error():
        main(parse_config(DiTTrainingConfig))
