"""Pieces shared by the two Accelerate training scripts: config files, checkpoints, batches, the step loop.

Kept in the package (not in ``training/``) so the tests can import and check them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Type, TypeVar

import numpy as np
import torch
import yaml
from PIL import Image

from .classifier.image_processing_tiny_cats import pil_to_rgb

T = TypeVar("T")
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
logger = logging.getLogger(__name__)


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("1", "true", "yes")


def parse_config(cls: Type[T], argv: Optional[List[str]] = None) -> T:
    """Build a dataclass config from defaults, then ``--config FILE.yaml``, then ``--field value`` flags."""
    parser = argparse.ArgumentParser(description=cls.__doc__, allow_abbrev=False)  # --learning_rat is an error
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


def save_checkpoint(accelerator, output_dir: os.PathLike, step: int, config: Any, keep_last: int,
                    state: Optional["TrainState"] = None) -> Optional[Path]:
    """``accelerator.save_state`` into a temporary folder, then rename: a kill never leaves a torn checkpoint.

    ``training_config.json`` beside the state records the step, the git commit, the config and
    where the run stands in its data (``state``), which a resume needs to continue exactly.
    """
    final = Path(output_dir) / f"checkpoint-{step}"
    tmp = Path(output_dir) / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        fix_file_modes(tmp)
        record = {"step": step, "code_version": code_version(), "config": dataclasses.asdict(config)}
        if state is not None:
            record["progress"] = dataclasses.asdict(state)
        (tmp / "training_config.json").write_text(json.dumps(record, indent=2))
        hang_for_tests("save", step, output_dir)
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


def open_for_size(value: Any, size: int) -> Image.Image:
    """An undecoded ``datasets.Image`` value (path/bytes) opened with JPEG draft mode.

    Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale (never below ``size``), which makes
    decoding several times faster when the training side is much smaller than the photo.
    """
    if isinstance(value, Image.Image):
        return value
    source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    image = Image.open(source)
    if image.format == "JPEG":
        image.draft("RGB", (size, size))
    return image


def make_image_transform(size: int, jpeg_draft: bool = False):
    """A ``datasets.with_transform`` function: decode and resize in DataLoader workers.

    With ``jpeg_draft`` the dataset's image column must be cast to ``datasets.Image(decode=False)``
    so that decoding happens here, at reduced scale.
    """

    def transform(batch):
        images = [open_for_size(v, size) for v in batch["image"]] if jpeg_draft else batch["image"]
        return {"pixel_values": [image_to_tensor(im, size) for im in images], "labels": batch["label"]}

    return transform


def collate(examples):
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
    }


# --- data loaders ------------------------------------------------------------------------------


def make_train_loader(dataset, cfg: Any, size: int) -> torch.utils.data.DataLoader:
    """The training DataLoader at side ``size``: random access, or a sharded stream (``cfg.streaming_shards``).

    Decoding and resizing run in ``cfg.dataloader_num_workers`` worker processes. Augmentation
    does not: it runs batched on the accelerator (kornia), where it is fast and where its random
    draws follow :func:`reseed` instead of depending on the number of workers.
    """
    draft = getattr(cfg, "jpeg_draft", False)
    if draft:
        import datasets

        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    transform = make_image_transform(size, draft)
    common = dict(batch_size=cfg.train_batch_size, drop_last=True, collate_fn=collate,
                  num_workers=cfg.dataloader_num_workers)
    if getattr(cfg, "streaming_shards", 0):
        from .data import as_stream

        stream = as_stream(dataset, cfg.streaming_shards, cfg.seed, cfg.shuffle_buffer)
        stream = stream.map(transform, batched=True, batch_size=16, remove_columns=list(dataset.column_names))
        return torch.utils.data.DataLoader(stream, **common)
    return torch.utils.data.DataLoader(dataset.with_transform(transform), shuffle=True, **common)


def stream_steps_per_epoch(num_rows: int, cfg: Any, num_processes: int, accumulation: int) -> int:
    """Optimizer steps every process can take in one pass over a sharded stream.

    Processes and DataLoader workers read whole shards, so their shares differ by up to a shard;
    an epoch stops at the smallest share so that no process waits for the others at the end.
    """
    readers = num_processes * max(cfg.dataloader_num_workers, 1)
    if cfg.streaming_shards % readers:
        raise ValueError(f"streaming_shards ({cfg.streaming_shards}) must be a multiple of "
                         f"processes x workers ({readers})")
    rows_per_reader = (num_rows // cfg.streaming_shards) * (cfg.streaming_shards // readers)
    batches = max(cfg.dataloader_num_workers, 1) * (rows_per_reader // cfg.train_batch_size)
    return batches // accumulation


# --- the accelerator, checkpoints, resume ------------------------------------------------------


@dataclasses.dataclass
class TrainState:
    """Where a run stands; saved with every checkpoint so that a resume continues with the same batches.

    ``epoch_step`` counts optimizer steps done in ``epoch``; ``chunks`` is how many pieces each
    micro-batch is cut into after out-of-memory recovery (1 = whole), kept so that a resumed run
    does not run out of memory again first.
    """

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    chunks: int = 1


def launched_processes() -> int:
    """Processes the launcher started (torchrun, deepspeed and mpirun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(cfg: Any, num_processes: int) -> int:
    """Gradient accumulation: ``global_batch_size / (train_batch_size x processes)`` when a global batch is set.

    One config then keeps its effective batch on 1 GPU or 64; only the accumulation changes.
    """
    global_batch = getattr(cfg, "global_batch_size", 0)
    if not global_batch:
        return cfg.gradient_accumulation_steps
    per_pass = cfg.train_batch_size * num_processes
    if global_batch % per_pass:
        raise ValueError(f"global_batch_size {global_batch} is not a multiple of "
                         f"train_batch_size x processes ({per_pass})")
    return global_batch // per_pass


def make_accelerator(cfg: Any, output_dir: Path):
    """The Accelerator both scripts use.

    - The seedable sampler, seeded with ``cfg.seed``, makes an epoch's order a function of
      (seed, epoch): ``set_epoch`` + ``skip_first_batches`` rebuild it on resume.
    - Accumulation is driven per optimizer step by :class:`OptimizerStep`, so the dataloader
      does not force a sync at its end (``sync_with_dataloader=False``).
    - ``dispatch_batches=False``: every process reads its own batches (its own shards of a stream)
      instead of process 0 decoding for all.
    - DDP does not re-broadcast buffers at each forward (TinyDiT has none; the classifier's
      BatchNorm statistics stay per process and process 0's are saved), so processes may run
      different numbers of forwards while recovering from out-of-memory.
    """
    from accelerate import Accelerator
    from accelerate.utils import (
        DataLoaderConfiguration,
        DistributedDataParallelKwargs,
        GradientAccumulationPlugin,
        ProjectConfiguration,
    )

    accumulation = accumulation_steps(cfg, launched_processes())
    accelerator = Accelerator(
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=accumulation, sync_with_dataloader=False),
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
    if accelerator.is_main_process:
        note = checkpointing_note(cfg)
        if note:
            logger.warning(note)
    return accelerator


def checkpointing_note(cfg: Any) -> Optional[str]:
    """One line when ``checkpointing_steps`` means no checkpoint before the end of the run, else None."""
    every, total = getattr(cfg, "checkpointing_steps", 0), getattr(cfg, "max_train_steps", 0)
    if every and total and every >= total:
        return (f"checkpointing_steps ({every}) >= max_train_steps ({total}): the only checkpoint is written at the "
                "end (set --checkpointing_steps lower to be able to resume mid-run; SIGTERM/Ctrl-C also checkpoints)")
    return None


def any_process(accelerator, flag: bool) -> bool:
    """True on every process if ``flag`` is true on any: decisions that end a run must be shared."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.gather(torch.tensor([float(flag)], device=accelerator.device)).max() > 0)


def resume_state(accelerator, output_dir: Path, resume: Optional[str], steps_per_epoch: int) -> TrainState:
    """Load the requested checkpoint ('latest', a path, or None) and return where its run stood.

    Checkpoints written before the position was recorded are placed from their step number.
    """
    path = resolve_resume(output_dir, resume)
    if path is None:
        if resume == "latest" and accelerator.is_main_process:
            logger.warning("--resume_from_checkpoint latest: no checkpoint in %s, starting from scratch", output_dir)
        return TrainState()
    accelerator.load_state(str(path))
    record_file = path / "training_config.json"
    progress = json.loads(record_file.read_text()).get("progress") if record_file.is_file() else None
    if progress:
        return TrainState(**progress)
    step = checkpoint_step(path)
    return TrainState(step=step, epoch=step // max(steps_per_epoch, 1), epoch_step=step % max(steps_per_epoch, 1))


def epoch_batches(accelerator, loader, epoch: int, skip: int):
    """The loader's batches for ``epoch`` (seeded order), minus the first ``skip`` already trained on."""
    loader.set_epoch(epoch)
    return accelerator.skip_first_batches(loader, skip) if skip else loader


def training_windows(accelerator, loader_for: Callable[[int], Any], state: TrainState, accumulation: int,
                     steps_per_epoch: Optional[int] = None) -> Iterator[List[dict]]:
    """Endless lists of ``accumulation`` batches, one list per optimizer step, continuing from ``state``.

    The caller advances ``state.step`` and ``state.epoch_step`` after each step; this advances the
    epoch. ``loader_for(step)`` picks the loader: when it changes (progressive resizing) the epoch
    continues in the new loader at the same position, since all loaders share the seeded order.
    A tail too short for a whole step is dropped, so every step averages as many samples;
    ``steps_per_epoch`` caps an epoch (streams, whose share per process is only known as a bound).
    """
    while True:
        loader = loader_for(state.step)
        window, switched = [], False
        done = bool(steps_per_epoch) and state.epoch_step >= steps_per_epoch
        for batch in [] if done else epoch_batches(accelerator, loader, state.epoch, state.epoch_step * accumulation):
            window.append(batch)
            if len(window) < accumulation:
                continue
            yield window
            window = []
            if steps_per_epoch and state.epoch_step >= steps_per_epoch:
                break
            if loader_for(state.step) is not loader:
                switched = True
                break
        if switched:
            continue
        if state.epoch_step == 0:
            raise ValueError("the training set yields fewer batches per epoch than one optimizer step needs")
        state.epoch, state.epoch_step = state.epoch + 1, 0


# --- one optimizer step: reproducible random draws, out-of-memory recovery ---------------------


def reseed(*key: int) -> None:
    """Seed torch's global RNG (CPU and every accelerator) from ``key``, e.g. (seed, step, micro-batch).

    Every random draw of a training step (noise, timesteps, label dropout, kornia augmentation)
    is then a function of the step alone: a resumed run repeats them bit for bit whatever else
    consumed random numbers before (each DataLoader iterator draws a worker seed from the global
    RNG; sample grids reseed it), and an out-of-memory retry redraws the same ones.
    """
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0]
    torch.manual_seed(int(state) >> 1)


def batch_size_of(inputs: Dict[str, torch.Tensor]) -> int:
    return next(iter(inputs.values())).shape[0]


def split_inputs(inputs: Dict[str, torch.Tensor], chunks: int) -> List[Dict[str, torch.Tensor]]:
    """``inputs`` (tensors sharing dimension 0) as ``chunks`` near-equal pieces."""
    parts = {name: torch.tensor_split(value, chunks) for name, value in inputs.items()}
    return [{name: value[i] for name, value in parts.items()} for i in range(chunks)]


class OOMInjector:
    """Tests only: ``TINY_CATS_TEST_OOM=SIZE:COUNT[@RANK]`` raises a CUDA-style out-of-memory error at
    the first COUNT forward passes over more than SIZE images (on process RANK only, if given)."""

    def __init__(self, process_index: int = 0) -> None:
        spec, _, rank = os.environ.get("TINY_CATS_TEST_OOM", "0:0").partition("@")
        size, _, count = spec.partition(":")
        self.size, self.left = int(size), int(count or 0) if rank in ("", str(process_index)) else 0

    def check(self, batch_size: int) -> None:
        if self.left > 0 and batch_size > self.size:
            self.left -= 1
            message = f"CUDA out of memory. Tried a micro-batch of {batch_size} (TINY_CATS_TEST_OOM)"
            raise torch.OutOfMemoryError(message)


def hang_for_tests(where: str, step: int, output_dir: os.PathLike) -> None:
    """Tests only: with ``TINY_CATS_TEST_HANG=WHERE:STEP``, write ``.hang-WHERE-STEP`` and wait to be killed."""
    if os.environ.get("TINY_CATS_TEST_HANG") != f"{where}:{step}":
        return
    (Path(output_dir) / f".hang-{where}-{step}").touch()
    while True:
        time.sleep(1)


class _PeerOutOfMemory(Exception):
    """Another process ran out of memory in this step: all of them retry it in smaller pieces."""


class OptimizerStep:
    """One optimizer step over a window of micro-batches, redone in smaller pieces on out-of-memory.

    For each micro-batch, ``make_inputs(batch, step)`` draws the random inputs after
    :func:`reseed` (so they depend on seed, step and global micro-batch index only) and
    ``loss_fn(model, inputs)`` returns the mean loss over them. Each micro-batch is cut into
    ``chunks`` pieces whose gradients accumulate through Accelerate's ``accumulate`` (no DDP
    all-reduce before the last piece). On an out-of-memory error the partial gradients are
    dropped, ``chunks`` doubles (micro-batch halved, accumulation doubled: the effective batch,
    the random inputs and so the update are unchanged up to float rounding) and the step is
    redone; ``chunks`` then stays for later steps. This is ``find_executable_batch_size``'s
    halving applied to one step, without restarting the run or changing the data order.

    With several processes they agree before the last piece, whose backward all-reduces the
    gradients: one tiny all-reduce per step. An error inside the last piece cannot be agreed on
    (the others already wait in the all-reduce) and is raised, as under DeepSpeed, whose engine
    fixes micro-batch and accumulation when it starts.
    """

    def __init__(self, accelerator, model, optimizer, scheduler, make_inputs, loss_fn, seed: int,
                 max_grad_norm: float, chunks: int = 1):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.make_inputs, self.loss_fn, self.seed, self.max_grad_norm = make_inputs, loss_fn, seed, max_grad_norm
        self.chunks, self.micro_batch, self.in_last_piece = chunks, 0, False
        self.injector = OOMInjector(accelerator.process_index)

    def __call__(self, window: List[dict], step: int) -> torch.Tensor:
        """Run the step; return this process's loss averaged over the window's samples."""
        while True:
            try:
                loss = self._backward(window, step)
                break
            except _PeerOutOfMemory as err:
                self._shrink(err)
            except RuntimeError as err:
                if not self._recoverable(err):
                    raise
                if self.accelerator.num_processes > 1:
                    self._anyone_out_of_memory(True)
                self._shrink(err)
        if self.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss

    def _backward(self, window: List[dict], step: int) -> torch.Tensor:
        acc = self.accelerator
        acc.gradient_accumulation_steps = len(window) * self.chunks
        acc.step = 0  # accumulate() counts pieces from here and syncs on the last one
        self.in_last_piece = False
        total = torch.zeros((), device=acc.device)
        for j, batch in enumerate(window):
            reseed(self.seed, step, j * acc.num_processes + acc.process_index)
            inputs = self.make_inputs(batch, step)
            self.micro_batch = size = batch_size_of(inputs)
            for i, piece in enumerate(split_inputs(inputs, self.chunks)):
                if j == len(window) - 1 and i == self.chunks - 1:
                    self._enter_last_piece()
                n = batch_size_of(piece)
                with acc.accumulate(self.model):
                    self.injector.check(n)
                    loss = self.loss_fn(self.model, piece)
                    acc.backward(loss * (n * self.chunks / size))  # accumulate() divides by the piece count
                total += loss.detach().float() * (n / size / len(window))
        return total

    def _enter_last_piece(self) -> None:
        if self.accelerator.num_processes > 1 and self._anyone_out_of_memory(False):
            raise _PeerOutOfMemory("another process ran out of memory")
        self.in_last_piece = True

    def _anyone_out_of_memory(self, mine: bool) -> bool:
        return any_process(self.accelerator, mine)

    def _recoverable(self, err: RuntimeError) -> bool:
        from accelerate.utils import DistributedType
        from accelerate.utils.memory import should_reduce_batch_size

        if not should_reduce_batch_size(err) or self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            return False
        return self.accelerator.num_processes == 1 or not self.in_last_piece

    def _shrink(self, err: Exception) -> None:
        from accelerate.utils.memory import clear_device_cache

        if self.chunks * 2 > self.micro_batch:
            raise err
        self.model.zero_grad(set_to_none=True)
        clear_device_cache(garbage_collection=True)
        self.chunks *= 2
        logger.warning("out of memory (%s): redoing the step with micro-batch %d and %dx more accumulation",
                       str(err).splitlines()[0], -(-self.micro_batch // self.chunks), self.chunks)


# --- stopping a run, and the scripts' entry point --------------------------------------------


class TrainingStopped(Exception):
    """The run was asked to stop (SIGTERM, SIGINT, or the launcher died); a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


PR_SET_PDEATHSIG = 1


def _stop_when_launcher_dies() -> None:
    """Under ``accelerate launch`` (Linux), ask the kernel for SIGTERM when the launcher process dies.

    The launcher does not forward signals: ``kill -9`` (or a plain ``kill``) of it would
    otherwise leave this process training on, detached. Only done when the parent really is
    the accelerate launcher, so ``nohup python train.py`` keeps running after its shell exits.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return
    if b"accelerate" not in cmdline:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class StopRequest:
    """SIGTERM or SIGINT (Ctrl-C) asks the training loop to stop after the current step.

    The loop then writes a checkpoint and ends with :class:`TrainingStopped`, so
    ``--resume_from_checkpoint latest`` continues exactly. A second signal stops at once (the
    checkpoints on disk stay complete: each is written to a temporary folder and renamed).
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave the signals alone
                pass
        _stop_when_launcher_dies()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            self.restore()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping now")
        self.signum = signum
        logger.warning("%s received: stopping after this step and writing a checkpoint (send it again to stop now)",
                       signal.Signals(signum).name)

    def requested(self, accelerator) -> bool:
        """True on every process once any process was signalled."""
        return any_process(accelerator, self.signum is not None)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def stop_with_checkpoint(stop: "StopRequest", accelerator, output_dir: Path, state: "TrainState", cfg: Any,
                         progress) -> None:
    """A stop was requested: checkpoint at this step (unless just written), end the run, raise :class:`TrainingStopped`."""
    if state.step % cfg.checkpointing_steps:
        save_checkpoint(accelerator, output_dir, state.step, cfg, cfg.checkpoints_total_limit, state)
    progress.close()
    accelerator.end_training()
    signum = stop.signum or signal.SIGTERM
    raise TrainingStopped(f"stopped by {signal.Signals(signum).name} at step {state.step}; wrote "
                          f"{Path(output_dir) / f'checkpoint-{state.step}'}; continue with --resume_from_checkpoint "
                          "latest", signum)


def run_script(main: Callable[[Any], Any], cls: Type[T], argv: Optional[List[str]] = None) -> int:
    """A training script's entry point: parse the config, run ``main``, end in one line on a user error.

    A missing data folder, a bad config value or a missing checkpoint prints
    ``SCRIPT: error: MESSAGE`` and exits with 2 (launch with ``accelerate launch --quiet`` so that
    the launcher does not add its own traceback); a stop request exits with 128 + the signal number.
    """
    name = Path(sys.argv[0]).name
    cfg = parse_config(cls, argv)
    try:
        main(cfg)
    except TrainingStopped as stop:
        print(f"{name}: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        if os.environ.get("TINY_CATS_DEBUG"):
            raise
        print(f"{name}: error: {' '.join(str(err).split())} (TINY_CATS_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    return 0


# --- traces for reproducibility checks ---------------------------------------------------------


def tensor_digest(tensors) -> str:
    """SHA-256 over the bytes of ``tensors`` in order: equal digests mean bit-identical values."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_digest(model) -> str:
    state = model.state_dict()
    return tensor_digest(state[name] for name in sorted(state))


class StepTrace:
    """JSON lines, one file per process: each step's loss, learning rate and a digest of its batches,
    then the final weight digests. What the reproducibility tests compare; off when ``directory`` is empty."""

    def __init__(self, directory: str, process_index: int) -> None:
        self.path = Path(directory) / f"trace-rank{process_index}.jsonl" if directory else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record) -> None:
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def step(self, step: int, loss: float, lr: float, window: List[dict]) -> None:
        if self.path:
            data = tensor_digest(t for batch in window for t in (batch["pixel_values"], batch["labels"]))
            self.write(step=step, loss=loss, lr=lr, data=data, shape=list(window[0]["pixel_values"].shape))
