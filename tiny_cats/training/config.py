"""Training options: a dataclass per script, filled from defaults, then ``--config FILE.yaml``, then ``--flags``."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Type, TypeVar

import yaml

T = TypeVar("T")


@dataclass
class TrainingConfig:
    """The options both training scripts have.

    Each script's config subclasses this, adds its own options and restates the defaults that
    differ for it (a restated field keeps its place here).
    """

    data: str = "../shared/data/oxford-iiit-pet"  # a local Oxford-IIIT Pet folder or a Hub dataset id
    output_dir: str = "outputs/run"
    train_batch_size: int = 32  # micro-batch per process
    gradient_accumulation_steps: int = 1
    global_batch_size: int = 0  # if set: accumulation = global / (train_batch_size x processes)
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 100
    max_train_steps: int = 2000
    max_grad_norm: float = 1.0  # 0 = no clipping
    ema_decay: float = 0.0  # > 0: keep an EMA of the weights; it is what gets evaluated and saved
    augmentation: str = "basic"
    checkpointing_steps: int = 250
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: Optional[str] = None  # a checkpoint folder, or "latest" (the newest in output_dir)
    seed: int = 0
    dataloader_num_workers: int = 1
    streaming_shards: int = 0  # > 0: read the training set as a sharded stream (see tiny_cats.data.as_stream)
    shuffle_buffer: int = 1000
    jpeg_draft: bool = False  # decode JPEGs at reduced scale when the side is small (faster input pipeline)
    limit_train_samples: int = 0
    trace_dir: str = ""  # per-process JSON lines of step losses and data digests (reproducibility checks)
    report_to: str = "tensorboard"


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("1", "true", "yes")


CONVERTERS = {"int": int, "float": float, "str": str, "Optional[str]": str, "Optional[int]": int, "bool": _parse_bool}


def parse_config(cls: Type[T], argv: Optional[List[str]] = None) -> T:
    """Build a ``cls`` config from its defaults, then ``--config FILE.yaml``, then ``--field value`` flags.

    Unknown YAML keys and unknown or abbreviated flags (``--learning_rat``) are errors.
    """
    parser = argparse.ArgumentParser(description=cls.__doc__, allow_abbrev=False)
    parser.add_argument("--config", help="YAML file whose keys are the options below")
    for field in dataclasses.fields(cls):
        type_name = field.type if isinstance(field.type, str) else field.type.__name__
        parser.add_argument(f"--{field.name}", type=CONVERTERS[type_name], default=None)
    args = parser.parse_args(argv)
    values = {}
    if args.config:
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        unknown = set(loaded) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            parser.error(f"unknown keys in {args.config}: {sorted(unknown)}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    return cls(**values)
