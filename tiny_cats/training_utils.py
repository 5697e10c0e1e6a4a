"""Pieces shared by the two Accelerate training scripts: config files, checkpoints, batches.

Kept in the package (not in ``training/``) so the tests can import and check them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, List, Optional, Type, TypeVar

import numpy as np
import torch
import yaml
from PIL import Image

from .image_processing_tiny_cats import pil_to_rgb

T = TypeVar("T")
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("1", "true", "yes")


def parse_config(cls: Type[T], argv: Optional[List[str]] = None) -> T:
    """Build a dataclass config from defaults, then ``--config FILE.yaml``, then ``--field value`` flags."""
    parser = argparse.ArgumentParser(description=cls.__doc__)
    parser.add_argument("--config", help="YAML file whose keys are the options below")
    converters = {"int": int, "float": float, "str": str, "Optional[str]": str, "Optional[int]": int, "bool": _parse_bool}
    for field in dataclasses.fields(cls):
        type_name = field.type if isinstance(field.type, str) else field.type.__name__
        parser.add_argument(f"--{field.name}", type=converters[type_name], default=None)
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


def code_version() -> str:
    """The git commit of the code that trained, or 'unknown' outside a checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def list_checkpoints(output_dir: os.PathLike) -> List[Path]:
    """Complete checkpoints in ``output_dir``, oldest first (half-written ``.tmp`` folders are ignored)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(accelerator, output_dir: os.PathLike, step: int, config: Any, keep_last: int) -> Optional[Path]:
    """``accelerator.save_state`` into a temporary folder, then rename: a kill never leaves a torn checkpoint."""
    final = Path(output_dir) / f"checkpoint-{step}"
    tmp = Path(output_dir) / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / "training_config.json").write_text(
            json.dumps({"step": step, "code_version": code_version(), "config": dataclasses.asdict(config)}, indent=2)
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(output_dir)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resolve_resume(output_dir: os.PathLike, resume: Optional[str]) -> Optional[Path]:
    """``'latest'`` -> newest complete checkpoint (or None); a path -> that path, checked."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {resume} does not exist")
    return path


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_PATTERN.match(path.name)
    if not match:
        raise ValueError(f"{path}: checkpoint folders are named checkpoint-STEP")
    return int(match.group(1))


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """PIL image -> (3, size, size) float tensor in [0, 1], resized with bicubic filtering."""
    image = pil_to_rgb(image).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def make_image_transform(size: int):
    """A ``datasets.with_transform`` function: decode and resize in DataLoader workers."""

    def transform(batch):
        return {"pixel_values": [image_to_tensor(im, size) for im in batch["image"]], "labels": batch["label"]}

    return transform


def collate(examples):
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
    }


def make_accelerator(cfg: Any, output_dir: Path):
    """The Accelerator both scripts use: accumulation, tracker, seedable sampler (exact data order on resume)."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

    return Accelerator(
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.report_to if cfg.report_to != "none" else None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def maybe_resume(accelerator, output_dir: Path, resume: Optional[str], batches_per_epoch: int, accumulation: int):
    """Load the requested checkpoint; return (global_step, epoch, batches of that epoch to skip)."""
    path = resolve_resume(output_dir, resume)
    if path is None:
        return 0, 0, 0
    accelerator.load_state(str(path))
    step = checkpoint_step(path)
    updates_per_epoch = max(1, batches_per_epoch // accumulation)
    return step, step // updates_per_epoch, (step % updates_per_epoch) * accumulation


def epoch_batches(accelerator, loader, epoch: int, skip: int):
    """The loader's batches for ``epoch`` (seeded order), minus the first ``skip`` already trained on."""
    loader.set_epoch(epoch)
    return accelerator.skip_first_batches(loader, skip) if skip else loader
