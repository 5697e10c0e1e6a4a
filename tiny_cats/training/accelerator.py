"""The Accelerator both training scripts use, and the decisions its processes take together."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

logger = logging.getLogger(__name__)


def launched_processes() -> int:
    """Processes the launcher started (torchrun, deepspeed and mpirun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(cfg: Any, num_processes: int) -> int:
    """Gradient accumulation: ``global_batch_size / (train_batch_size x processes)`` when a global batch is set.

    One config then keeps its effective batch on 1 GPU or 64; only the accumulation changes.
    """
    if not cfg.global_batch_size:
        return cfg.gradient_accumulation_steps
    per_pass = cfg.train_batch_size * num_processes
    if cfg.global_batch_size % per_pass:
        raise ValueError(f"global_batch_size {cfg.global_batch_size} is not a multiple of "
                         f"train_batch_size x processes ({per_pass})")
    return cfg.global_batch_size // per_pass


def make_accelerator(cfg: Any):
    """The Accelerator of a run writing to ``cfg.output_dir``.

    - Gradient accumulation is Accelerate's: ``accelerator.accumulate(model)`` around each
      micro-batch counts them and syncs gradients on the last of each step. The scripts hand it
      whole steps only (an epoch's tail too short for a step is dropped), so the dataloader
      does not need to force a sync at its end (``sync_with_dataloader=False``).
    - The seedable sampler, seeded with ``cfg.seed``, makes an epoch's order a function of
      (seed, epoch): ``set_epoch`` + ``skip_first_batches`` rebuild it on resume.
    - ``dispatch_batches=False``: every process reads its own batches (its own shards of a stream)
      instead of process 0 decoding for all.
    - DDP does not re-broadcast buffers at each forward (TinyDiT has none; the classifier's
      BatchNorm statistics stay per process and process 0's are saved), so processes may run
      different numbers of forwards while redoing a step that ran out of memory.
    """
    from accelerate import Accelerator
    from accelerate.utils import (
        DataLoaderConfiguration,
        DistributedDataParallelKwargs,
        GradientAccumulationPlugin,
        ProjectConfiguration,
    )

    output_dir = Path(cfg.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=accumulation_steps(cfg, launched_processes()), sync_with_dataloader=False),
        log_with=cfg.report_to if cfg.report_to != "none" else None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed,
                                                  dispatch_batches=False),
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
    )
    if launched_processes() > accelerator.num_processes:
        raise RuntimeError(
            f"launched as {launched_processes()} processes but Accelerate sees {accelerator.num_processes}: "
            "on a machine without GPUs set ACCELERATE_USE_CPU=true so that the processes join one gloo group"
        )
    note = checkpointing_note(cfg)
    if note and accelerator.is_main_process:
        logger.warning(note)
    return accelerator


def checkpointing_note(cfg: Any) -> Optional[str]:
    """One line when ``checkpointing_steps`` means no checkpoint before the end of the run, else None."""
    every, total = cfg.checkpointing_steps, cfg.max_train_steps
    if every and total and every >= total:
        return (f"checkpointing_steps ({every}) >= max_train_steps ({total}): the only checkpoint is written at the "
                "end (set --checkpointing_steps lower to be able to resume mid-run; SIGTERM/Ctrl-C also checkpoints)")
    return None


def any_process(accelerator, flag: bool) -> bool:
    """True on every process if ``flag`` is true on any: decisions that end a run or a step must be shared."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.gather(torch.tensor([float(flag)], device=accelerator.device)).max() > 0)
