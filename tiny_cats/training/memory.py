"""Out-of-memory recovery: a step that runs out of memory is redone with its micro-batches in smaller pieces."""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Dict, Iterator, List, Optional

import torch

from .accelerator import any_process

logger = logging.getLogger(__name__)


def batch_size_of(inputs: Dict[str, torch.Tensor]) -> int:
    return next(iter(inputs.values())).shape[0]


def split_inputs(inputs: Dict[str, torch.Tensor], chunks: int) -> List[Dict[str, torch.Tensor]]:
    """``inputs`` (tensors sharing dimension 0) as ``chunks`` near-equal pieces."""
    parts = {name: torch.tensor_split(value, chunks) for name, value in inputs.items()}
    return [{name: value[i] for name, value in parts.items()} for i in range(chunks)]


class OutOfMemoryRetry:
    """Forward and backward of each micro-batch in ``chunks`` pieces; after running out of memory, twice as many.

    In a training loop::

        for _ in oom.attempts():  # once; again, in smaller pieces, after running out of memory
            for batch in window:
                inputs = ...  # random draws seeded per (step, micro-batch)
                with accelerator.accumulate(model):
                    loss += oom.backward(loss_fn, inputs)
        optimizer.step()

    :meth:`backward` runs ``loss_fn(model, piece)`` and its backward for each piece (all but the
    last under ``no_sync``, so nothing is all-reduced early), each weighted by its share of the
    micro-batch. After an out-of-memory error the rest of the attempt does no work but still goes
    through ``accumulate`` (Accelerate keeps counting whole steps); then :meth:`attempts` drops the
    gradients, doubles ``chunks`` and yields again, and the loop redoes the step: the same samples
    and random draws, so the same update up to float rounding. ``chunks`` stays for later steps.
    This is ``find_executable_batch_size``'s halving applied to one step, without restarting the
    run or changing the data order.

    With several processes, all agree before the backward that all-reduces the step's gradients
    (one tiny all-reduce per step): if any ran out of memory, all redo the step. An error inside that
    last piece cannot be agreed on (the others already wait in the all-reduce) and is raised, as is
    any error under DeepSpeed, whose engine fixes micro-batch and accumulation when it starts.
    """

    def __init__(self, accelerator, model, chunks: int = 1):
        self.accelerator, self.model, self.chunks = accelerator, model, chunks
        self.error: Optional[BaseException] = None  # this attempt ran out of memory (here or in another process)
        self.micro_batch = 0

    def attempts(self) -> Iterator[int]:
        """Yields ``chunks`` once, and again (doubled) after each attempt that ran out of memory."""
        from accelerate.utils.memory import clear_device_cache

        while True:
            self.error = None
            yield self.chunks
            if self.error is None:
                return
            if self.chunks * 2 > self.micro_batch:
                raise self.error
            self.model.zero_grad(set_to_none=True)
            clear_device_cache(garbage_collection=True)
            self.chunks *= 2
            logger.warning("out of memory (%s): redoing the step with micro-batch %d and %dx more accumulation",
                           str(self.error).splitlines()[0], -(-self.micro_batch // self.chunks), self.chunks)

    def backward(self, loss_fn: Callable, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Loss and gradients of one micro-batch (inside ``accelerator.accumulate``); returns its mean loss."""
        acc = self.accelerator
        size = self.micro_batch = batch_size_of(inputs)
        total = torch.zeros((), device=acc.device)
        pieces = split_inputs(inputs, self.chunks)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            syncs = last and acc.sync_gradients  # this backward all-reduces the step's gradients
            if syncs and acc.num_processes > 1 and any_process(acc, self.error is not None):
                self.error = self.error or torch.OutOfMemoryError("another process ran out of memory")
            if self.error is not None:
                continue
            share = batch_size_of(piece) / size
            try:
                with contextlib.nullcontext() if last else acc.no_sync(self.model):
                    loss = loss_fn(self.model, piece)
                    acc.backward(loss * share)
            except RuntimeError as err:
                if not self._recoverable(err, syncs):
                    raise
                self.error = err.with_traceback(None)  # the traceback would keep the failed step's tensors alive
                continue
            total += loss.detach().float() * share
        return total

    def _recoverable(self, err: RuntimeError, syncs: bool) -> bool:
        from accelerate.utils import DistributedType
        from accelerate.utils.memory import should_reduce_batch_size

        if not should_reduce_batch_size(err) or self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            return False
        return self.accelerator.num_processes == 1 or not syncs
