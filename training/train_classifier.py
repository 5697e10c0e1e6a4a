"""Fine-tune the tiny-cats classifier with Accelerate.

    .venv/bin/accelerate launch --quiet --config_file training/accelerate/cpu.yaml training/train_classifier.py --config training/configs/classifier_cpu.yaml
    .venv/bin/accelerate launch --quiet --config_file training/accelerate/gpu.yaml training/train_classifier.py --config training/configs/classifier_gpu.yaml

Starts from the ImageNet EfficientNet-Lite0 weights (``--backbone efficientnet_lite0``) or
from scratch (``--backbone resnet18``). AdamW (a smaller rate for a pretrained backbone,
optionally decaying layer by layer towards the stem), linear warmup then cosine decay, gradient
accumulation (``global_batch_size`` fixes the effective batch whatever the process count) and
clipping, label smoothing, optional mixup/CutMix, optional EMA of the weights (the EMA is
evaluated and saved), mixed precision from ``accelerate launch --mixed_precision`` (forward
under autocast; loss, weights, optimizer state and EMA in fp32), atomic checkpoints every N
steps and ``--resume_from_checkpoint latest`` that continues with the same data and random draws.

Preprocessing has one source: the image processor saved with the model. Test images go through
it as they are; training images are resized with its filter at ``image_size``, augmented
(``basic``, ``advanced`` or ``randaugment``, see tiny_cats/augmentation.py) and normalised
with its mean and std.

With ``validation_fraction`` > 0, that share of each label's training photos is held out
(seeded; ``validation_fold`` picks one of the 1 / fraction folds, for cross-validation): the run
reports metrics on it, and fits the temperature that calibrates the probabilities on it (stored in
the saved config; the test split is never used to choose anything). ``final/training_results.json``
holds accuracy, NLL and 15-bin ECE on the validation and test splits, with test-time flip off and on,
before and after calibration (``--evaluate_test false`` leaves test out: cross-validation runs).
Writes a ``save_pretrained`` folder to ``output_dir/final``.

Stop a run with Ctrl-C or ``kill -TERM`` of this process (or of the launcher, whose death this
process notices): it finishes the current step, writes a checkpoint and exits with 128 + the
signal number; ``--resume_from_checkpoint latest`` continues it exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import tiny_cats  # noqa: F401  (first: its log filter quiets diffusers' "Multiple distributions" notice)

# isort: split
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers import get_scheduler

from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.augmentation import build_train_augmentation
from tiny_cats.classifier.labels import OTHER_ID
from tiny_cats.convert_efficientnet_lite0 import load_imagenet_backbone
from tiny_cats.data import load_pets, split_validation
from tiny_cats.files import staged_folder
from tiny_cats.training.accelerator import make_accelerator
from tiny_cats.training.calibration import classification_metrics, fit_temperature
from tiny_cats.training.checkpoints import TrainState, fix_file_modes, resume, save_checkpoint
from tiny_cats.training.config import TrainingConfig, parse_config
from tiny_cats.training.loaders import epoch_windows, make_eval_loader, make_train_loader, stream_steps_per_epoch
from tiny_cats.training.memory import OutOfMemoryRetry
from tiny_cats.training.recipes import mix_batch, parameter_groups
from tiny_cats.training.reproducibility import StepTrace, reseed, weights_digest
from tiny_cats.training.stopping import StopOnSignal, exit_on_stop_or_error, stop_with_checkpoint

logger = logging.getLogger("train_classifier")


@dataclass
class ClassifierTrainingConfig(TrainingConfig):
    """Options of train_classifier.py (YAML keys or --flags); the shared ones are in tiny_cats/training/config.py."""

    output_dir: str = "outputs/classifier"
    backbone: str = "efficientnet_lite0"  # or resnet18 (trained from scratch)
    pretrained: bool = True  # efficientnet_lite0 starts from the ImageNet weights
    image_size: int = 192
    # Side of the images at test time (the saved processor's size); 0 = image_size. Random-resize
    # augmentation makes objects look smaller in training than at test, so testing at a slightly
    # larger side (about 1.15x, Touvron et al. 2019, "FixRes") matches apparent object sizes.
    eval_image_size: int = 0
    eval_batch_size: int = 64
    learning_rate: float = 1e-3  # the classifier head (and a backbone trained from scratch)
    backbone_learning_rate: float = 3e-4  # a pretrained backbone
    layer_decay: float = 1.0  # < 1: the backbone's rate shrinks by this per stage down to the stem
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    # > 0: add this times the yes/no "is it a cat?" cross-entropy, with P(not a cat) = P(other), so a cat
    # called `other` costs more than a cat called the wrong breed (cat vs not is a target of its own)
    cat_vs_not_weight: float = 0.0
    mixup_alpha: float = 0.0  # > 0: mixup with lam ~ Beta(alpha, alpha), soft targets
    cutmix_alpha: float = 0.0  # > 0: CutMix; with mixup too, one of the two per batch
    lr_scheduler: str = "cosine"
    warmup_steps: int = 50
    max_train_steps: int = 400
    num_epochs: int = 0  # > 0: train this many epochs (whole steps) instead of max_train_steps
    augmentation: str = "basic"  # basic | advanced | randaugment
    validation_fraction: float = 0.0  # > 0: hold out this share of each label's training photos (seeded)
    # seed of that split, apart from ``seed``: runs with other training seeds hold out the same photos
    validation_seed: int = 0
    # with validation_fraction 1/k: which of k folds to hold out (k-fold cross-validation; 0: the usual split)
    validation_fold: int = 0
    validation_every_steps: int = 0  # > 0: also log validation metrics every N steps
    # false: skip the test split (cross-validation runs, scored on their held-out fold; needs a validation split)
    evaluate_test: bool = True
    test_time_flip: bool = False  # the saved model averages each image's logits with its mirror image's
    checkpointing_steps: int = 100
    channels_last: bool = True
    limit_eval_samples: int = 0


def load_splits(cfg: ClassifierTrainingConfig):
    """Training, validation (None without ``validation_fraction``) and test sets; validation photos
    come out of the training photos, never the test ones."""
    pets = load_pets(cfg.data)
    train_set, validation_set, test_set = pets["train"], None, pets["test"]
    if cfg.validation_fraction:
        train_set, validation_set = split_validation(train_set, cfg.validation_fraction, cfg.validation_seed,
                                                         cfg.validation_fold)
    if cfg.limit_train_samples:
        train_set = train_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_train_samples, len(train_set))))
    if cfg.limit_eval_samples:
        test_set = test_set.shuffle(seed=cfg.seed).select(range(min(cfg.limit_eval_samples, len(test_set))))
    return train_set, validation_set, test_set


def build_model(cfg: ClassifierTrainingConfig, processor: TinyCatsImageProcessor) -> TinyCatsForImageClassification:
    config = TinyCatsConfig(backbone=cfg.backbone, image_size=processor.size["height"],
                            test_time_flip=cfg.test_time_flip)
    model = TinyCatsForImageClassification(config)
    if cfg.pretrained and cfg.backbone == "efficientnet_lite0":
        load_imagenet_backbone(model)
    return model


def soft_cross_entropy(model, inputs: dict, label_smoothing: float, cat_vs_not_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy in fp32 to integer labels or to mixup/CutMix's soft targets, with label smoothing; plus
    ``cat_vs_not_weight`` times the binary cross-entropy of "not a cat" = the `other` label's probability."""
    logits = model(pixel_values=inputs["pixel_values"]).logits.float()
    labels = inputs["labels"]
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if cat_vs_not_weight:
        log_probs = logits.log_softmax(-1)
        log_other = log_probs[:, OTHER_ID]
        log_cat = torch.cat([log_probs[:, :OTHER_ID], log_probs[:, OTHER_ID + 1 :]], -1).logsumexp(-1)
        other = labels[:, OTHER_ID] if labels.is_floating_point() else (labels == OTHER_ID).float()
        loss = loss - cat_vs_not_weight * (other * log_other + (1 - other) * log_cat).mean()
    return loss


def predict(model, loader, accelerator, cfg: ClassifierTrainingConfig, flip: bool, desc: str):
    """Logits at temperature 1 (test-time flip on or off) and labels of every image of a prepared loader."""
    config = accelerator.unwrap_model(model).config
    config.temperature, config.test_time_flip = 1.0, flip
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, disable=not accelerator.is_main_process):
            pixels = batch["pixel_values"]
            if cfg.channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            out = model(pixel_values=pixels).logits.float()
            out, y = accelerator.gather_for_metrics((out, batch["labels"]))
            logits.append(out.cpu())
            labels.append(y.cpu())
    config.test_time_flip = False
    model.train()
    return torch.cat(logits), torch.cat(labels)


def evaluate(model, loaders: dict, accelerator, cfg: ClassifierTrainingConfig, flips=(False, True)) -> dict:
    """``{"temperature": T, split: {"flip_off"|"flip_on": metrics}}`` for each split in ``loaders``.

    T is fitted on the validation split's logits with the flip setting the model ships with
    (1.0 without a validation split); metrics then include NLL and ECE after calibration.
    """
    other_id = accelerator.unwrap_model(model).config.label2id["other"]
    logits = {(split, flip): predict(model, loader, accelerator, cfg, flip, f"{split} split{' + flip' if flip else ''}")
              for split, loader in loaders.items() for flip in flips}
    fitted = ("validation", cfg.test_time_flip) in logits
    temperature = fit_temperature(*logits["validation", cfg.test_time_flip]) if fitted else None
    report = {"temperature": temperature or 1.0}
    for (split, flip), (out, labels) in logits.items():
        name = "flip_on" if flip else "flip_off"
        report.setdefault(split, {})[name] = classification_metrics(out, labels, other_id, temperature)
    return report


@contextlib.contextmanager
def ema_weights(accelerator, model, ema):
    """The EMA weights in the model for the duration (nothing happens without an EMA)."""
    params = list(accelerator.unwrap_model(model).parameters())
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    try:
        yield
    finally:
        if ema is not None:
            ema.restore(params)


def main(cfg: ClassifierTrainingConfig) -> dict:
    accelerator = make_accelerator(cfg)
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    accumulation = accelerator.gradient_accumulation_steps
    set_seed(cfg.seed)

    # The processor saved with the model drives all preprocessing (test: as is; training: its filter, mean, std).
    processor = TinyCatsImageProcessor(size=cfg.eval_image_size or cfg.image_size)
    mean, std = (torch.tensor(v, device=accelerator.device).view(1, 3, 1, 1)
                 for v in (processor.image_mean, processor.image_std))
    if not cfg.evaluate_test and not cfg.validation_fraction:
        raise ValueError("evaluate_test false needs validation_fraction > 0: the run would evaluate nothing")
    train_set, validation_set, test_set = load_splits(cfg)
    train_loader = make_train_loader(train_set, cfg, cfg.image_size, processor.resample)
    eval_sets = {"validation": validation_set, "test": test_set if cfg.evaluate_test else None}
    eval_loaders = {name: make_eval_loader(data, processor, cfg.eval_batch_size, cfg.dataloader_num_workers)
                    for name, data in eval_sets.items() if data is not None}

    model = build_model(cfg, processor)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    backbone_lr = cfg.backbone_learning_rate if cfg.pretrained else cfg.learning_rate
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.learning_rate, backbone_lr, cfg.layer_decay),
                                  weight_decay=cfg.weight_decay)
    augment = build_train_augmentation(cfg.augmentation, cfg.image_size).to(accelerator.device)
    model, optimizer, train_loader, *prepared = accelerator.prepare(model, optimizer, train_loader, *eval_loaders.values())
    eval_loaders = dict(zip(eval_loaders, prepared))
    if cfg.streaming_shards:
        steps_per_epoch = stream_steps_per_epoch(len(train_set), cfg, accelerator.num_processes, accumulation)
    else:
        steps_per_epoch = len(train_loader) // accumulation
    if cfg.num_epochs:
        cfg = dataclasses.replace(cfg, max_train_steps=cfg.num_epochs * steps_per_epoch)
    scheduler = accelerator.prepare(get_scheduler(  # Accelerate steps a prepared scheduler once per process
        cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_train_steps * accelerator.num_processes))
    ema = None
    if cfg.ema_decay > 0:  # of the parameters as the prepared model holds them, in fp32 (see train_dit.make_ema)
        ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay)
        ema.to(dtype=torch.float32)
        accelerator.register_for_checkpointing(ema)
    if accelerator.is_main_process:
        accelerator.init_trackers("classifier", config={k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})

    state = resume(accelerator, cfg, steps_per_epoch)
    oom = OutOfMemoryRetry(accelerator, model, state.chunks)
    loss_fn = functools.partial(soft_cross_entropy, label_smoothing=cfg.label_smoothing,
                                cat_vs_not_weight=cfg.cat_vs_not_weight)
    num_labels = accelerator.unwrap_model(model).config.num_labels
    trace = StepTrace(cfg.trace_dir, accelerator.process_index)
    progress = tqdm(total=cfg.max_train_steps, initial=state.step, desc="train", disable=not accelerator.is_main_process)
    started, earlier = time.time(), state.train_seconds
    with StopOnSignal() as stop, progress:  # SIGTERM / Ctrl-C: finish the step, checkpoint, exit
        while state.step < cfg.max_train_steps:
            for window in epoch_windows(accelerator, train_loader, state, accumulation,
                                        steps_per_epoch if cfg.streaming_shards else 0):
                for _ in oom.attempts():  # once; again in smaller pieces after running out of memory
                    loss = torch.zeros((), device=accelerator.device)
                    for j, batch in enumerate(window):  # the step's micro-batches, gradients accumulated
                        reseed(cfg.seed, state.step, j * accelerator.num_processes + accelerator.process_index)
                        pixels = (augment(batch["pixel_values"]) - mean) / std
                        pixels, targets = mix_batch(pixels, batch["labels"], num_labels, cfg.mixup_alpha,
                                                    cfg.cutmix_alpha)
                        if cfg.channels_last:
                            pixels = pixels.contiguous(memory_format=torch.channels_last)
                        with accelerator.accumulate(model):
                            loss += oom.backward(loss_fn, {"pixel_values": pixels, "labels": targets}) / len(window)
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                state.step, state.epoch_step, state.chunks = state.step + 1, state.epoch_step + 1, oom.chunks
                state.train_seconds = earlier + time.time() - started
                if ema is not None and not optimizer.step_was_skipped:
                    ema.step(accelerator.unwrap_model(model).parameters())

                loss, lr = accelerator.reduce(loss, "mean").item(), scheduler.get_last_lr()[0]
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.3f}")
                accelerator.log({"train/loss": loss, "train/lr": lr}, step=state.step)
                trace.step(state.step, loss, lr, window)
                if cfg.validation_every_steps and state.step % cfg.validation_every_steps == 0 and validation_set is not None:
                    with ema_weights(accelerator, model, ema):
                        found = evaluate(model, {"validation": eval_loaders["validation"]}, accelerator, cfg, (False,))
                    accelerator.log({f"validation/{k}": v for k, v in found["validation"]["flip_off"].items()},
                                    step=state.step)
                if state.step % cfg.checkpointing_steps == 0 or state.step == cfg.max_train_steps:
                    save_checkpoint(accelerator, cfg, state)
                if state.step < cfg.max_train_steps and stop.requested(accelerator):
                    stop_with_checkpoint(accelerator, cfg, state, stop)
                if state.step == cfg.max_train_steps:
                    break
            else:
                state.next_epoch()
    train_seconds = time.time() - started

    if ema is not None:  # evaluate and save the averaged weights
        ema.copy_to(accelerator.unwrap_model(model).parameters())
    return finish(accelerator, model, processor, eval_loaders, cfg, state, train_seconds, len(train_set), trace,
                  steps_per_epoch)


def finish(accelerator, model, processor, eval_loaders: dict, cfg: ClassifierTrainingConfig, state: TrainState,
           train_seconds: float, num_train_images: int, trace: StepTrace, steps_per_epoch: int) -> dict:
    """Evaluate (and calibrate), save model, processor and ``training_results.json``; returns the test metrics
    (the validation metrics of a run with ``evaluate_test`` false)."""
    output_dir = Path(cfg.output_dir)
    results = evaluate(model, eval_loaders, accelerator, cfg)
    shipped = "flip_on" if cfg.test_time_flip else "flip_off"
    split = "test" if "test" in results else "validation"
    metrics = results[split][shipped]
    prefix = "eval" if split == "test" else "validation"  # validation: as validation_every_steps logs it
    accelerator.log({f"{prefix}/{k}": v for k, v in metrics.items()}, step=state.step)
    trace.write(final_weights=weights_digest(accelerator.unwrap_model(model)))
    weights = accelerator.get_state_dict(model)  # full weights, gathered under FSDP/DeepSpeed
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.config.temperature, unwrapped.config.test_time_flip = results["temperature"], cfg.test_time_flip
        weights = {name: tensor.contiguous() for name, tensor in weights.items()}  # channels_last -> plain layout
        report = {**(metrics if split == "test" else {}), **results, "steps": state.step, "epochs": state.epochs_seen(steps_per_epoch),
                  "micro_batch_chunks": state.chunks,
                  "train_seconds_this_run": round(train_seconds, 1),
                  "train_seconds": round(state.train_seconds, 1), "num_train_images": num_train_images,
                  "config": dataclasses.asdict(cfg)}
        with staged_folder(output_dir / "final") as final:  # a crash leaves the previous final/ (or none)
            unwrapped.save_pretrained(final, state_dict=weights)
            processor.save_pretrained(final)
            fix_file_modes(final)
            (final / "training_results.json").write_text(json.dumps(report, indent=2))
        logger.info("%s split (%s, temperature %.3f): %s", split, shipped, results["temperature"], json.dumps(metrics))
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    with exit_on_stop_or_error():
        main(parse_config(ClassifierTrainingConfig))
