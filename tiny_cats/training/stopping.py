"""Stopping a run cleanly: SIGTERM, Ctrl-C or the launcher's death -> checkpoint, then exit 128 + signal.

Also the scripts' exit on a user error: one line, ``SCRIPT: error: MESSAGE``, status 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from .accelerator import any_process
from .checkpoints import TrainState, save_checkpoint

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


class TrainingStopped(Exception):
    """The run was asked to stop (SIGTERM, SIGINT, or the launcher died); a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


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


class StopOnSignal:
    """``with StopOnSignal() as stop:`` SIGTERM or SIGINT (Ctrl-C) asks the loop to stop after the current step.

    The loop checks :meth:`requested` after each step and then calls :func:`stop_with_checkpoint`,
    so ``--resume_from_checkpoint latest`` continues exactly. A second signal stops at once (the
    checkpoints on disk stay complete: each is written to a temporary folder and renamed). The
    previous handlers come back when the ``with`` block ends.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous = {}

    def __enter__(self) -> "StopOnSignal":
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave the signals alone
                pass
        _stop_when_launcher_dies()
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping now")
        self.signum = signum
        logger.warning("%s received: stopping after this step and writing a checkpoint (send it again to stop now)",
                       signal.Signals(signum).name)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def requested(self, accelerator) -> bool:
        """True on every process once any process was signalled."""
        return any_process(accelerator, self.signum is not None)


def stop_with_checkpoint(accelerator, cfg: Any, state: TrainState, stop: StopOnSignal) -> None:
    """Checkpoint at this step (unless just written), end the run and raise :class:`TrainingStopped`."""
    if state.step % cfg.checkpointing_steps:
        save_checkpoint(accelerator, cfg, state)
    accelerator.end_training()
    signum = stop.signum or signal.SIGTERM
    raise TrainingStopped(f"stopped by {signal.Signals(signum).name} at step {state.step}; wrote "
                          f"{Path(cfg.output_dir) / f'checkpoint-{state.step}'}; continue with --resume_from_checkpoint "
                          "latest", signum)


@contextlib.contextmanager
def exit_on_stop_or_error():
    """Around a training script's ``main``: how it ends for a person at a terminal.

    A stop request prints where the run stopped and exits with 128 + the signal number. A user
    error (a missing data folder or checkpoint, a bad config value) prints ``SCRIPT: error: MESSAGE``
    and exits with 2 instead of a traceback (``TINY_CATS_DEBUG=1`` shows it; launch with
    ``accelerate launch --quiet`` so that the launcher does not add its own).
    """
    name = Path(sys.argv[0]).name
    try:
        yield
    except TrainingStopped as stop:
        print(f"{name}: {stop}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        if os.environ.get("TINY_CATS_DEBUG"):
            raise
        print(f"{name}: error: {' '.join(str(err).split())} (TINY_CATS_DEBUG=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
