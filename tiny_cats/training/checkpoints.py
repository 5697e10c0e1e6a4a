"""Checkpoints: written whole or not at all, found again by ``--resume_from_checkpoint``, and where a run stands."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, List, Optional

logger = logging.getLogger(__name__)
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


@dataclasses.dataclass
class TrainState:
    """Where a run stands; saved with every checkpoint so that a resume continues with the same batches.

    ``epoch_step`` counts the optimizer steps done in ``epoch``; ``chunks`` is how many pieces
    each micro-batch is cut into since the run last ran out of memory (1 = whole), kept so that a
    resumed run does not run out of memory again first. ``train_seconds`` is the time spent in the
    training loop, summed over the runs that resumed one another (up to the state's last update).
    """

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    chunks: int = 1
    train_seconds: float = 0.0

    def next_epoch(self) -> None:
        """The epoch's batches ran out: continue with the next epoch."""
        if self.epoch_step == 0:
            raise ValueError("the training set yields fewer batches per epoch than one optimizer step needs")
        self.epoch, self.epoch_step = self.epoch + 1, 0

    def epochs_seen(self, steps_per_epoch: int) -> float:
        """Epochs of data the steps so far took, part-epochs included, for reports (``epoch`` counts only
        those whose batches ran out: a run that stops on an epoch's last step never rolls it over)."""
        return round(self.step / max(steps_per_epoch, 1), 2)


def code_version() -> str:
    """The git commit of the code that trained, or 'unknown' outside a checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def normal_file_mode() -> int:
    """0o666 minus the umask: the mode ``open()`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fix_file_modes(folder: os.PathLike) -> None:
    """Give ``*.safetensors`` under ``folder`` the usual mode of a new file.

    safetensors >= 0.7 writes through a temporary file that it renames into place (Rust's
    ``tempfile`` crate), and such files are created 0600: weights would be private to their
    owner, unlike every other file a run writes.
    """
    mode = normal_file_mode()
    for path in Path(folder).rglob("*.safetensors"):
        if path.is_file() and (path.stat().st_mode & 0o777) != mode:
            path.chmod(mode)


def list_checkpoints(output_dir: os.PathLike) -> List[Path]:
    """Complete checkpoints in ``output_dir``, oldest first (half-written ``.tmp`` folders are ignored)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(accelerator, cfg: Any, state: TrainState) -> Path:
    """``accelerator.save_state`` into ``cfg.output_dir/.checkpoint-STEP.tmp``, then rename: a kill never
    leaves a torn checkpoint. Keeps the newest ``cfg.checkpoints_total_limit`` (all if 0).

    ``training_config.json`` beside the state records the step, the git commit, the config and
    where the run stands in its data (``progress``), which a resume needs to continue exactly.
    """
    output_dir = Path(cfg.output_dir)
    final, tmp = output_dir / f"checkpoint-{state.step}", output_dir / f".checkpoint-{state.step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        fix_file_modes(tmp)
        record = {"step": state.step, "code_version": code_version(), "config": dataclasses.asdict(cfg),
                  "progress": dataclasses.asdict(state)}
        (tmp / "training_config.json").write_text(json.dumps(record, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        keep = cfg.checkpoints_total_limit
        for old in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
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


def resume(accelerator, cfg: Any, steps_per_epoch: int) -> TrainState:
    """Load ``cfg.resume_from_checkpoint`` ('latest', a path, or None) and return where its run stood.

    Everything registered with the accelerator comes back (weights, optimizer, scheduler, random
    states, an EMA). Checkpoints written before the position was recorded are placed from their
    step number and ``steps_per_epoch``.
    """
    path = resolve_resume(cfg.output_dir, cfg.resume_from_checkpoint)
    if path is None:
        if cfg.resume_from_checkpoint == "latest" and accelerator.is_main_process:
            logger.warning("--resume_from_checkpoint latest: no checkpoint in %s, starting from scratch", cfg.output_dir)
        return TrainState()
    accelerator.load_state(str(path))
    record_file = path / "training_config.json"
    progress = json.loads(record_file.read_text()).get("progress") if record_file.is_file() else None
    if progress:
        state = TrainState(**progress)
    else:
        step, per_epoch = checkpoint_step(path), max(steps_per_epoch, 1)
        state = TrainState(step=step, epoch=step // per_epoch, epoch_step=step % per_epoch)
    logger.info("resumed from %s at step %d (epoch %d, step %d of it)", path, state.step, state.epoch, state.epoch_step)
    return state
