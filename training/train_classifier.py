"""Fine-tune the tiny-cats classifier with Accelerate.

    accelerate launch training/train_classifier.py --config training/configs/classifier_cpu.yaml

Starts from the ImageNet EfficientNet-Lite0 weights (``--backbone efficientnet_lite0``) or
from scratch (``--backbone resnet18``). AdamW, linear warmup then cosine decay, gradient
accumulation and clipping, mixed precision from ``accelerate launch --mixed_precision``,
atomic checkpoints every N steps and ``--resume_from_checkpoint latest`` that continues
with the same data order. Writes a ``save_pretrained`` folder to ``output_dir/final``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.augmentation import build_augmentation
from tiny_cats.convert_efficientnet_lite0 import load_imagenet_backbone
from tiny_cats.data import load_pets
from tiny_cats.training_utils import (
    collate,
    epoch_batches,
    make_accelerator,
    make_image_transform,
    maybe_resume,
    parse_config,
    save_checkpoint,
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
    train_batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    backbone_learning_rate: float = 3e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    lr_scheduler: str = "cosine"
    warmup_steps: int = 50
    max_train_steps: int = 400
    max_grad_norm: float = 1.0
    checkpointing_steps: int = 100
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: Optional[str] = None
    seed: int = 0
    dataloader_num_workers: int = 1
    channels_last: bool = True
    limit_train_samples: int = 0
    limit_eval_samples: int = 0
    report_to: str = "tensorboard"


def build_model(cfg: ClassifierTrainingConfig) -> TinyCatsForImageClassification:
    image_size = cfg.eval_image_size or cfg.image_size
    model = TinyCatsForImageClassification(TinyCatsConfig(backbone=cfg.backbone, image_size=image_size))
    if cfg.pretrained and cfg.backbone == "efficientnet_lite0":
        load_imagenet_backbone(model)
    return model


def evaluate(model, loader, accelerator, channels_last: bool) -> dict:
    """Top-1 accuracy (13-way, and over cat images only) on a prepared loader."""
    model.eval()
    correct = total = cat_correct = cat_total = 0
    other_id = model.config.label2id["other"]
    with torch.no_grad():
        for batch in loader:
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


def main(cfg: ClassifierTrainingConfig) -> dict:
    output_dir = Path(cfg.output_dir)
    accelerator = make_accelerator(cfg, output_dir)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    set_seed(cfg.seed)

    pets = load_pets(cfg.data)
    train_set, eval_set = pets["train"], pets["test"]
    if cfg.limit_train_samples:
        train_set = train_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_train_samples, len(train_set))))
    if cfg.limit_eval_samples:
        eval_set = eval_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_eval_samples, len(eval_set))))
    eval_size = cfg.eval_image_size or cfg.image_size
    loader_args = dict(collate_fn=collate, num_workers=cfg.dataloader_num_workers)
    train_loader = torch.utils.data.DataLoader(
        train_set.with_transform(make_image_transform(cfg.image_size)), batch_size=cfg.train_batch_size,
        shuffle=True, drop_last=True, **loader_args,
    )
    eval_loader = torch.utils.data.DataLoader(
        eval_set.with_transform(make_image_transform(eval_size)), batch_size=cfg.eval_batch_size, **loader_args
    )

    model = build_model(cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    head = [p for n, p in model.named_parameters() if n.startswith("classifier.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    body_lr = cfg.backbone_learning_rate if cfg.pretrained else cfg.learning_rate
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": body_lr}, {"params": head, "lr": cfg.learning_rate}], weight_decay=cfg.weight_decay
    )
    scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes,
    )
    augment = build_augmentation().to(accelerator.device)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler
    )
    if accelerator.is_main_process:
        accelerator.init_trackers("classifier", config={k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})

    global_step, epoch, skip_batches = maybe_resume(
        accelerator, output_dir, cfg.resume_from_checkpoint, len(train_loader), cfg.gradient_accumulation_steps
    )
    if global_step:
        logger.info("resumed at step %d", global_step)

    progress = tqdm(total=cfg.max_train_steps, initial=global_step, disable=not accelerator.is_main_process, desc="train")
    started = time.time()
    while global_step < cfg.max_train_steps:
        batches, skip_batches = epoch_batches(accelerator, train_loader, epoch, skip_batches), 0
        for batch in batches:
            with accelerator.accumulate(model):
                pixels = augment(batch["pixel_values"])
                pixels = (pixels - 0.5) / 0.5
                if cfg.channels_last:
                    pixels = pixels.contiguous(memory_format=torch.channels_last)
                logits = model(pixel_values=pixels).logits
                loss = torch.nn.functional.cross_entropy(logits, batch["labels"], label_smoothing=cfg.label_smoothing)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
            accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=global_step)
            if global_step % cfg.checkpointing_steps == 0 or global_step == cfg.max_train_steps:
                save_checkpoint(accelerator, output_dir, global_step, cfg, cfg.checkpoints_total_limit)
            if global_step >= cfg.max_train_steps:
                break
        epoch += 1
    progress.close()
    train_seconds = time.time() - started

    metrics = evaluate(model, eval_loader, accelerator, cfg.channels_last)
    accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=global_step)
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model).to(memory_format=torch.contiguous_format)
        final.save_pretrained(output_dir / "final")
        TinyCatsImageProcessor(size=eval_size).save_pretrained(output_dir / "final")
        report = {**metrics, "steps": global_step, "train_seconds_this_run": round(train_seconds, 1),
                  "num_train_images": len(train_set), "config": dataclasses.asdict(cfg)}
        (output_dir / "final" / "training_results.json").write_text(json.dumps(report, indent=2))
        logger.info("test split: %s", json.dumps(metrics))
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    main(parse_config(ClassifierTrainingConfig))
