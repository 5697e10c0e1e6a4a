"""Faults for the training tests, injected from outside the production code.

In a test process, with pytest's ``monkeypatch``:

    inject_out_of_memory(monkeypatch, TinyDiTTransformer2DModel, larger_than=1, times=2)

In a child process (``accelerate launch``, a run to be killed), run the script through this file;
environment variables say what to inject:

    python tests/faults.py training/train_dit.py --config ...
    TINY_CATS_TEST_OOM=SIZE:COUNT[@RANK]  the first COUNT forwards of the model over more than SIZE
                                          images raise a CUDA-style out-of-memory error (on process RANK only)
    TINY_CATS_TEST_HANG=save:STEP         checkpoint STEP is written but never renamed into place: the
                                          process touches OUTPUT_DIR/.hang-save-STEP and waits to be killed
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

import torch


def out_of_memory_forward(forward, larger_than: int, times: int):
    """``forward`` that raises ``torch.OutOfMemoryError`` the first ``times`` calls over more than ``larger_than`` images."""
    left = [times]

    def failing(self, pixels, *args, **kwargs):
        if left[0] > 0 and pixels.shape[0] > larger_than:
            left[0] -= 1
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried a micro-batch of {pixels.shape[0]} (injected)")
        return forward(self, pixels, *args, **kwargs)

    return failing


def inject_out_of_memory(monkeypatch, model_class, larger_than: int, times: int) -> None:
    monkeypatch.setattr(model_class, "forward", out_of_memory_forward(model_class.forward, larger_than, times))


def hang_after_writing(checkpoint_step: int):
    """Patch checkpoint saving: checkpoint ``checkpoint_step`` is written whole but never renamed into place."""
    from tiny_cats.training import checkpoints

    fix_file_modes = checkpoints.fix_file_modes

    def fix_then_hang(folder):
        fix_file_modes(folder)
        if Path(folder).name == f".checkpoint-{checkpoint_step}.tmp":
            (Path(folder).parent / f".hang-save-{checkpoint_step}").touch()
            while True:
                time.sleep(1)

    checkpoints.fix_file_modes = fix_then_hang


def main() -> None:
    """Run the training script ``sys.argv[1]`` with its arguments, with the faults the environment asks for."""
    oom = os.environ.get("TINY_CATS_TEST_OOM")
    if oom:
        spec, _, rank = oom.partition("@")
        size, _, count = spec.partition(":")
        if rank in ("", os.environ.get("RANK", "0")):
            from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel

            model = TinyDiTTransformer2DModel
            model.forward = out_of_memory_forward(model.forward, int(size), int(count))
    hang = os.environ.get("TINY_CATS_TEST_HANG")
    if hang:
        where, _, step = hang.partition(":")
        assert where == "save", hang
        hang_after_writing(int(step))
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
