"""Fine-tune the tiny-cats classifier with Accelerate.

    .venv/bin/accelerate launch --quiet --config_file training/accelerate/cpu.yaml training/train_classifier.py --config training/configs/classifier_cpu.yaml
    .venv/bin/accelerate launch --quiet --config_file training/accelerate/gpu.yaml training/train_classifier.py --config training/configs/classifier_gpu.yaml

Starts from the ImageNet EfficientNet-Lite0 weights (``--backbone efficientnet_lite0``) or
from scratch (``--backbone resnet18``). AdamW, linear warmup then cosine decay, gradient
accumulation (``global_batch_size`` fixes the effective batch whatever the process count) and
clipping, optional EMA of the weights (``ema_decay`` > 0; the EMA weights are evaluated and
saved), mixed precision from ``accelerate launch --mixed_precision`` (forward under autocast,
loss, weights, optimizer state and EMA in fp32), atomic checkpoints every N steps and
``--resume_from_checkpoint latest`` that continues with the same data and random draws.
Augmentation ``basic`` is the seed's flip/affine/jitter; ``advanced`` adds random-resized crops,
TrivialAugment and random erasing, for long runs where the basic set stops regularising.
Writes a ``save_pretrained`` folder to ``output_dir/final``.

Stop a run with Ctrl-C or ``kill -TERM`` of this process (or of the launcher, whose death this
process notices): it finishes the current step, writes a checkpoint and exits with 128 + the
signal number; ``--resume_from_checkpoint latest`` continues it exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tiny_cats  # noqa: F401, I001  (first: its log filter quiets diffusers' "Multiple distributions" notice)
import kornia.augmentation as K
import torch
from accelerate.utils import set_seed
from diffusers.training_utils import EMAModel
from torch import nn
from tqdm.auto import tqdm
from transformers import get_scheduler

from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.augmentation import build_augmentation
from tiny_cats.convert_efficientnet_lite0 import load_imagenet_backbone
from tiny_cats.data import load_pets
from tiny_cats.training_utils import (
    OptimizerStep,
    StepTrace,
    StopRequest,
    collate,
    hang_for_tests,
    make_accelerator,
    make_image_transform,
    make_train_loader,
    fix_file_modes,
    resume_state,
    run_script,
    stop_with_checkpoint,
    save_checkpoint,
    stream_steps_per_epoch,
    training_windows,
    weights_digest,
)

logger = logging.getLogger("train_classifier")


@dataclass
class ClassifierTrainingConfig:
    """Options of train_classifier.py (YAML keys or --flags)."""

    data: str = "../shared/data/oxford-iiit-pet"
    output_dir: str = "outputs/classifier"
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    image_size: int = 192
    # Side of the images at test time (the saved processor's size); 0 = image_size. Random-resize
    # augmentation makes objects look smaller in training than at test, so testing at a slightly
    # larger side (about 1.15x, Touvron et al. 2019, "FixRes") matches apparent object sizes.
    eval_image_size: int = 0
    train_batch_size: int = 32  # micro-batch per process
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    global_batch_size: int = 0  # if set: accumulation = global / (train_batch_size x processes)
    learning_rate: float = 1e-3
    backbone_learning_rate: float = 3e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    lr_scheduler: str = "cosine"
    warmup_steps: int = 50
    max_train_steps: int = 400
    max_grad_norm: float = 1.0
    ema_decay: float = 0.0  # > 0: keep an EMA of the weights and evaluate/save it
    augmentation: str = "basic"  # basic | advanced
    checkpointing_steps: int = 100
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: Optional[str] = None
    seed: int = 0
    dataloader_num_workers: int = 1
    streaming_shards: int = 0  # > 0: read the training set as a sharded stream (see tiny_cats.data.as_stream)
    shuffle_buffer: int = 1000
    jpeg_draft: bool = False  # decode JPEGs at reduced scale when the side is small (faster input pipeline)
    channels_last: bool = True
    limit_train_samples: int = 0
    limit_eval_samples: int = 0
    trace_dir: str = ""  # per-process JSON lines of step losses and data digests (reproducibility checks)
    report_to: str = "tensorboard"


def build_model(cfg: ClassifierTrainingConfig) -> TinyCatsForImageClassification:
    image_size = cfg.eval_image_size or cfg.image_size
    model = TinyCatsForImageClassification(TinyCatsConfig(backbone=cfg.backbone, image_size=image_size))
    if cfg.pretrained and cfg.backbone == "efficientnet_lite0":
        load_imagenet_backbone(model)
    return model


def build_train_augmentation(kind: str, size: int) -> nn.Module:
    """``basic``: the seed's flip/affine/jitter. ``advanced``: random-resized crop (35-100% of the
    area), flip, TrivialAugment (one random photometric or geometric op per image) and random
    erasing, the usual strong recipe for long training runs."""
    if kind == "basic":
        return build_augmentation()
    if kind != "advanced":
        raise ValueError(f"augmentation must be basic or advanced, not {kind!r}")
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.35, 1.0)),
        K.RandomHorizontalFlip(),
        K.auto.TrivialAugment(),
        K.RandomErasing(p=0.25, scale=(0.02, 0.2)),
    )


def evaluate(model, loader, accelerator, channels_last: bool) -> dict:
    """Top-1 accuracy (13-way, and over cat images only) on a prepared loader."""
    model.eval()
    correct = total = cat_correct = cat_total = 0
    other_id = accelerator.unwrap_model(model).config.label2id["other"]
    with torch.no_grad():
        for batch in tqdm(loader, desc="test split", disable=not accelerator.is_main_process):
            pixels = batch["pixel_values"]
            if channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            logits = model(pixel_values=(pixels - 0.5) / 0.5).logits
            preds, labels = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"]))
            correct += (preds == labels).sum().item()
            total += labels.numel()
            cats = labels != other_id
            cat_correct += (preds[cats] == labels[cats]).sum().item()
            cat_total += cats.sum().item()
    model.train()
    return {"accuracy": correct / max(total, 1), "cat_breed_accuracy": cat_correct / max(cat_total, 1), "num_images": total}


def build_optimizer(model, cfg: ClassifierTrainingConfig) -> torch.optim.Optimizer:
    """AdamW with a smaller learning rate for a pretrained backbone than for the new head."""
    head = [p for n, p in model.named_parameters() if n.startswith("classifier.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    body_lr = cfg.backbone_learning_rate if cfg.pretrained else cfg.learning_rate
    return torch.optim.AdamW([{"params": body, "lr": body_lr}, {"params": head, "lr": cfg.learning_rate}],
                             weight_decay=cfg.weight_decay)


def load_splits(cfg: ClassifierTrainingConfig):
    pets = load_pets(cfg.data)
    train_set, eval_set = pets["train"], pets["test"]
    if cfg.limit_train_samples:
        train_set = train_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_train_samples, len(train_set))))
    if cfg.limit_eval_samples:
        eval_set = eval_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_eval_samples, len(eval_set))))
    return train_set, eval_set


def main(cfg: ClassifierTrainingConfig) -> dict:
    output_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, output_dir)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    accumulation = accelerator.gradient_accumulation_steps
    set_seed(cfg.seed)

    train_set, eval_set = load_splits(cfg)
    eval_size = cfg.eval_image_size or cfg.image_size
    train_loader = make_train_loader(train_set, cfg, cfg.image_size)
    eval_loader = torch.utils.data.DataLoader(
        eval_set.with_transform(make_image_transform(eval_size)), batch_size=cfg.eval_batch_size,
        collate_fn=collate, num_workers=cfg.dataloader_num_workers,
    )

    model = build_model(cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = get_scheduler(  # Accelerate steps a prepared scheduler once per process
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes,
    )
    augment = build_train_augmentation(cfg.augmentation, cfg.image_size).to(accelerator.device)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler
    )
    ema = None
    if cfg.ema_decay > 0:  # of the parameters as the prepared model holds them, in fp32 (see train_dit.make_ema)
        ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay)
        ema.to(dtype=torch.float32)
        accelerator.register_for_checkpointing(ema)
    if accelerator.is_main_process:
        accelerator.init_trackers("classifier", config={k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})

    if cfg.streaming_shards:
        steps_per_epoch = stream_steps_per_epoch(len(train_set), cfg, accelerator.num_processes, accumulation)
    else:
        steps_per_epoch = len(train_loader) // accumulation
    state = resume_state(accelerator, output_dir, cfg.resume_from_checkpoint, steps_per_epoch)
    if state.step:
        logger.info("resumed at step %d (epoch %d, step %d of it)", state.step, state.epoch, state.epoch_step)

    def make_inputs(batch, step):
        pixels = (augment(batch["pixel_values"]) - 0.5) / 0.5
        if cfg.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return {"pixel_values": pixels, "labels": batch["labels"]}

    def loss_fn(model, inputs):
        logits = model(pixel_values=inputs["pixel_values"]).logits
        return torch.nn.functional.cross_entropy(logits.float(), inputs["labels"], label_smoothing=cfg.label_smoothing)

    run_step = OptimizerStep(accelerator, model, optimizer, scheduler, make_inputs, loss_fn, cfg.seed,
                             cfg.max_grad_norm, chunks=state.chunks)
    trace = StepTrace(cfg.trace_dir, accelerator.process_index)
    progress = tqdm(total=cfg.max_train_steps, initial=state.step, desc="train",
                    disable=not accelerator.is_main_process)
    started = time.time()
    stop = StopRequest()
    try:
        windows = training_windows(accelerator, lambda step: train_loader, state, accumulation,
                                   steps_per_epoch if cfg.streaming_shards else None)
        while state.step < cfg.max_train_steps:
            window = next(windows)
            loss = accelerator.reduce(run_step(window, state.step), "mean").item()
            state.step, state.epoch_step, state.chunks = state.step + 1, state.epoch_step + 1, run_step.chunks
            if ema is not None and not optimizer.step_was_skipped:
                ema.step(accelerator.unwrap_model(model).parameters())
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.3f}")
            lr = scheduler.get_last_lr()[0]
            accelerator.log({"train/loss": loss, "train/lr": lr}, step=state.step)
            trace.step(state.step, loss, lr, window)
            if state.step % cfg.checkpointing_steps == 0 or state.step == cfg.max_train_steps:
                save_checkpoint(accelerator, output_dir, state.step, cfg, cfg.checkpoints_total_limit, state)
            hang_for_tests("step", state.step, output_dir)
            if state.step < cfg.max_train_steps and stop.requested(accelerator):
                stop_with_checkpoint(stop, accelerator, output_dir, state, cfg, progress)
    finally:
        stop.restore()
    progress.close()
    train_seconds = time.time() - started

    if ema is not None:  # evaluate and save the averaged weights
        ema.copy_to(accelerator.unwrap_model(model).parameters())
    metrics = evaluate(model, eval_loader, accelerator, cfg.channels_last)
    accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=state.step)
    trace.write(final_weights=weights_digest(accelerator.unwrap_model(model)))
    weights = accelerator.get_state_dict(model)  # full weights, gathered under FSDP/DeepSpeed
    if accelerator.is_main_process:
        weights = {name: tensor.contiguous() for name, tensor in weights.items()}  # channels_last -> plain layout
        accelerator.unwrap_model(model).save_pretrained(output_dir / "final", state_dict=weights)
        TinyCatsImageProcessor(size=eval_size).save_pretrained(output_dir / "final")
        fix_file_modes(output_dir / "final")
        report = {**metrics, "steps": state.step, "epochs": state.epoch, "micro_batch_chunks": state.chunks,
                  "train_seconds_this_run": round(train_seconds, 1),
                  "num_train_images": len(train_set), "config": dataclasses.asdict(cfg)}
        (output_dir / "final" / "training_results.json").write_text(json.dumps(report, indent=2))
        logger.info("test split: %s", json.dumps(metrics))
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    sys.exit(run_script(main, ClassifierTrainingConfig))
