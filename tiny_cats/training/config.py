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

    Unknown or abbreviated flags (``--learning_rat``) are argparse errors. A config file that is
    missing, not YAML, has unknown keys or a value of the wrong type raises ``FileNotFoundError`` /
    ``ValueError`` naming it (the scripts print those in one line). YAML values go through the same
    converters as flags, so ``learning_rate: 1e-3`` (a string to YAML) is the float 0.001.
    """
    converters = {}
    parser = argparse.ArgumentParser(description=cls.__doc__, allow_abbrev=False)
    parser.add_argument("--config", help="YAML file whose keys are the options below")
    for field in dataclasses.fields(cls):
        type_name = field.type if isinstance(field.type, str) else field.type.__name__
        converters[field.name] = CONVERTERS[type_name]
        parser.add_argument(f"--{field.name}", type=converters[field.name], default=None)
    args = parser.parse_args(argv)
    values = {}
    if args.config:
        values.update(load_config_file(args.config, converters))
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    return cls(**values)


def load_config_file(path: str, converters: dict) -> dict:
    """The options of a YAML config file, each converted like its flag would be."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no config file {path}")
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold `option: value` lines, not a {type(loaded).__name__}")
    unknown = sorted(set(loaded) - set(converters))
    if unknown:
        raise ValueError(f"unknown keys in {path}: {unknown}")
    values = {}
    for key, value in loaded.items():
        try:  # through str, as a flag's text: 2.5 is no int, yes/no are bools only where a bool is expected
            values[key] = None if value is None else converters[key](str(value))
        except (ValueError, argparse.ArgumentTypeError):
            expected = {int: "an integer", float: "a number", _parse_bool: "true or false"}.get(converters[key], "valid")
            raise ValueError(f"{path}: {key}: {value!r} is not {expected}") from None
    return values
