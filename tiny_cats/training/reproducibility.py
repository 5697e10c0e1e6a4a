"""Per-step seeding (exact resume) and the traces that check it: digests of batches and weights per step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List

import numpy as np
import torch


def reseed(*key: int) -> None:
    """Seed torch's global RNG (CPU and every accelerator) from ``key``, e.g. (seed, step, micro-batch).

    Every random draw of a training step (noise, timesteps, label dropout, kornia augmentation,
    mixup) is then a function of the step alone: a resumed run repeats them bit for bit whatever
    else consumed random numbers before (each DataLoader iterator draws a worker seed from the
    global RNG; sample grids reseed it), and a step redone after running out of memory redraws
    the same ones.
    """
    state = np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0]
    torch.manual_seed(int(state) >> 1)


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
    then the final weight digests. Compare two runs' traces to check that they are the same run
    (what the reproducibility tests do); off when ``directory`` is empty."""

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
