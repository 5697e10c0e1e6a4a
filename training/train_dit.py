"""Train TinyDiT, the class-conditional cat generator, with Accelerate.

    accelerate launch training/train_dit.py --config training/configs/dit_cpu.yaml

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

Augmentation is a horizontal flip only: rotations and colour jitter would teach the
generator to draw rotated, off-colour cats. EMA weights are what ``final/`` holds.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers import get_scheduler

from tiny_cats.data import cats_only, load_pets
from tiny_cats.labels import CAT_BREEDS
from tiny_cats.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.pipeline_tiny_dit import TinyDiTPipeline, images_to_grid
from tiny_cats.training_utils import (
    collate,
    epoch_batches,
    make_accelerator,
    make_image_transform,
    maybe_resume,
    parse_config,
    save_checkpoint,
)

logger = logging.getLogger("train_dit")


@dataclass
class DiTTrainingConfig:
    """Options of train_dit.py (YAML keys or --flags)."""

    data: str = "../shared/data/oxford-iiit-pet"
    output_dir: str = "outputs/dit"
    sample_size: int = 64
    patch_size: int = 4
    hidden_size: int = 192
    num_layers: int = 6
    num_attention_heads: int = 3
    train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 100
    max_train_steps: int = 2000
    max_train_minutes: float = 0.0  # stop early (and save) after this wall-clock budget; 0 = no limit
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999
    class_dropout_prob: float = 0.1
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: Optional[str] = None
    sample_every_steps: int = 500
    sample_inference_steps: int = 25
    sample_guidance_scale: float = 4.0
    seed: int = 0
    dataloader_num_workers: int = 1
    limit_train_samples: int = 0
    report_to: str = "tensorboard"


def flow_matching_loss(model, images: torch.Tensor, labels: torch.Tensor, cfg: DiTTrainingConfig, null_id: int):
    """Rectified-flow velocity loss at logit-normal times; labels dropped to null for CFG."""
    noise = torch.randn_like(images)
    t = torch.sigmoid(cfg.logit_normal_mean + cfg.logit_normal_std * torch.randn(images.shape[0], device=images.device))
    noisy = (1 - t.view(-1, 1, 1, 1)) * images + t.view(-1, 1, 1, 1) * noise
    drop = torch.rand(labels.shape[0], device=labels.device) < cfg.class_dropout_prob
    labels = torch.where(drop, torch.full_like(labels, null_id), labels)
    velocity = model(noisy, t * 1000.0, labels).sample
    return F.mse_loss(velocity.float(), (noise - images).float())


def build_pipeline(transformer: TinyDiTTransformer2DModel) -> TinyDiTPipeline:
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return TinyDiTPipeline(transformer=transformer, scheduler=scheduler, id2label=dict(enumerate(CAT_BREEDS)))


def save_sample_grid(transformer, ema: EMAModel, path: Path, cfg: DiTTrainingConfig) -> None:
    """One image per breed from the EMA weights, fixed seed, as a 6-column PNG."""
    ema_model = copy.deepcopy(transformer)
    ema.copy_to(ema_model.parameters())
    pipe = build_pipeline(ema_model.eval())
    pipe.set_progress_bar_config(disable=True)
    images = pipe(list(CAT_BREEDS), num_inference_steps=cfg.sample_inference_steps,
                  guidance_scale=cfg.sample_guidance_scale, generator=torch.manual_seed(cfg.seed)).images
    path.parent.mkdir(parents=True, exist_ok=True)
    images_to_grid(images, columns=6).save(path)


def main(cfg: DiTTrainingConfig) -> dict:
    output_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, output_dir)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    set_seed(cfg.seed)

    train_set = cats_only(load_pets(cfg.data)["train"])
    if cfg.limit_train_samples:
        train_set = train_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_train_samples, len(train_set))))
    train_loader = torch.utils.data.DataLoader(
        train_set.with_transform(make_image_transform(cfg.sample_size)), batch_size=cfg.train_batch_size,
        shuffle=True, drop_last=True, collate_fn=collate, num_workers=cfg.dataloader_num_workers,
    )
    model = TinyDiTTransformer2DModel(
        sample_size=cfg.sample_size, patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers, num_attention_heads=cfg.num_attention_heads, num_classes=len(CAT_BREEDS),
    )
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, model_cls=TinyDiTTransformer2DModel, model_config=model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(
        cfg.lr_scheduler, optimizer,
        num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes,
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    accelerator.register_for_checkpointing(ema)
    if accelerator.is_main_process:
        accelerator.init_trackers("dit", config={k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})

    global_step, epoch, skip_batches = maybe_resume(
        accelerator, output_dir, cfg.resume_from_checkpoint, len(train_loader), cfg.gradient_accumulation_steps
    )
    if global_step:
        logger.info("resumed at step %d", global_step)

    null_id = accelerator.unwrap_model(model).null_class_id
    progress = tqdm(total=cfg.max_train_steps, initial=global_step, disable=not accelerator.is_main_process, desc="train")
    started, losses = time.time(), []
    while global_step < cfg.max_train_steps:
        batches, skip_batches = epoch_batches(accelerator, train_loader, epoch, skip_batches), 0
        for batch in batches:
            with accelerator.accumulate(model):
                images = batch["pixel_values"] * 2 - 1
                flip = torch.rand(images.shape[0], device=images.device) < 0.5
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
                loss = flow_matching_loss(model, images, batch["labels"], cfg, null_id)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            ema.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            losses.append(loss.item())
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}")
            accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=global_step)
            if global_step % cfg.checkpointing_steps == 0 or global_step == cfg.max_train_steps:
                save_checkpoint(accelerator, output_dir, global_step, cfg, cfg.checkpoints_total_limit)
            if accelerator.is_main_process and cfg.sample_every_steps and global_step % cfg.sample_every_steps == 0:
                save_sample_grid(accelerator.unwrap_model(model), ema, output_dir / "samples" / f"step-{global_step:06d}.png", cfg)
            out_of_time = cfg.max_train_minutes and time.time() - started > 60 * cfg.max_train_minutes
            if out_of_time and global_step < cfg.max_train_steps:
                logger.info("time budget of %.1f min spent at step %d; saving", cfg.max_train_minutes, global_step)
                save_checkpoint(accelerator, output_dir, global_step, cfg, cfg.checkpoints_total_limit)
            if global_step >= cfg.max_train_steps or out_of_time:
                break
        else:
            epoch += 1
            continue
        break
    progress.close()

    report = {"steps": global_step, "train_seconds_this_run": round(time.time() - started, 1),
              "final_loss_mean_last_100": sum(losses[-100:]) / max(len(losses[-100:]), 1),
              "num_train_images": len(train_set), "config": dataclasses.asdict(cfg)}
    if accelerator.is_main_process:
        final_model = copy.deepcopy(accelerator.unwrap_model(model))
        ema.copy_to(final_model.parameters())
        build_pipeline(final_model.eval()).save_pretrained(output_dir / "final")
        (output_dir / "final" / "training_results.json").write_text(json.dumps(report, indent=2))
        save_sample_grid(accelerator.unwrap_model(model), ema, output_dir / "samples" / "final.png", cfg)
    accelerator.end_training()
    return report


if __name__ == "__main__":
    main(parse_config(DiTTrainingConfig))
