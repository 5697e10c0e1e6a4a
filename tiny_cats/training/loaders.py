"""Images to tensors, the DataLoaders, and the batches of an epoch (continued exactly on resume)."""

from __future__ import annotations

import io
from typing import Any, Iterator, List, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ..classifier.image_processing_tiny_cats import pil_to_rgb

Size = Union[int, Tuple[int, int]]  # a square side or (height, width)


def _height_width(size: Size) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def image_to_tensor(image: Image.Image, size: Size, resample: int = Image.BICUBIC) -> torch.Tensor:
    """PIL image -> (3, height, width) float tensor in [0, 1], resized with ``resample``."""
    height, width = _height_width(size)
    image = pil_to_rgb(image).resize((width, height), resample)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def open_for_size(value: Any, size: Size) -> Image.Image:
    """An undecoded ``datasets.Image`` value (path/bytes) opened with JPEG draft mode.

    Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale (never below ``size``), which makes
    decoding several times faster when the training side is much smaller than the photo.
    """
    if isinstance(value, Image.Image):
        return value
    source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    image = Image.open(source)
    if image.format == "JPEG":
        height, width = _height_width(size)
        image.draft("RGB", (width, height))
    return image


def make_image_transform(size: Size, jpeg_draft: bool = False, resample: int = Image.BICUBIC):
    """A ``datasets.with_transform`` function: decode and resize to [0, 1] tensors in DataLoader workers.

    With ``jpeg_draft`` the dataset's image column must be cast to ``datasets.Image(decode=False)``
    so that decoding happens here, at reduced scale.
    """

    def transform(batch):
        images = [open_for_size(v, size) for v in batch["image"]] if jpeg_draft else batch["image"]
        return {"pixel_values": [image_to_tensor(im, size, resample) for im in images], "labels": batch["label"]}

    return transform


def collate(examples):
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
    }


def make_train_loader(dataset, cfg: Any, size: Size, resample: int = Image.BICUBIC) -> torch.utils.data.DataLoader:
    """The training DataLoader of [0, 1] images at ``size``: random access, or a sharded stream
    (``cfg.streaming_shards``). Batches of ``cfg.train_batch_size``; an incomplete last batch is dropped.

    Decoding and resizing run in ``cfg.dataloader_num_workers`` worker processes. Augmentation
    does not: it runs batched on the accelerator (kornia), where it is fast and where its random
    draws follow :func:`~tiny_cats.training.reproducibility.reseed` instead of depending on the
    number of workers.
    """
    draft = getattr(cfg, "jpeg_draft", False)
    if draft:
        import datasets

        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    transform = make_image_transform(size, draft, resample)
    common = dict(batch_size=cfg.train_batch_size, drop_last=True, collate_fn=collate,
                  num_workers=cfg.dataloader_num_workers)
    if getattr(cfg, "streaming_shards", 0):
        from ..data import as_stream

        stream = as_stream(dataset, cfg.streaming_shards, cfg.seed, cfg.shuffle_buffer)
        stream = stream.map(transform, batched=True, batch_size=16, remove_columns=list(dataset.column_names))
        return torch.utils.data.DataLoader(stream, **common)
    return torch.utils.data.DataLoader(dataset.with_transform(transform), shuffle=True, **common)


def make_eval_loader(dataset, processor, batch_size: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Batches of ``processor(images)``: exactly the preprocessing the saved model folder gets."""

    def transform(batch):
        pixels = processor(batch["image"], return_tensors="pt")["pixel_values"]
        return {"pixel_values": list(pixels), "labels": batch["label"]}

    return torch.utils.data.DataLoader(dataset.with_transform(transform), batch_size=batch_size, collate_fn=collate,
                                       num_workers=num_workers)


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


def epoch_windows(accelerator, loader, state, accumulation: int, max_steps: int = 0) -> Iterator[List[dict]]:
    """The rest of epoch ``state.epoch``: lists of ``accumulation`` batches, one list per optimizer step.

    An epoch's order is a function of (seed, epoch) (Accelerate's seedable sampler, or the
    stream's seeded shuffle), so skipping the ``state.epoch_step`` steps already taken continues
    it exactly: after a resume, or in another loader over the same data (progressive resizing).
    The caller advances ``state.epoch_step`` after each step. A tail too short for a whole step
    is dropped, so every step averages as many samples; ``max_steps`` caps the epoch (streams,
    whose share per process is known only as a bound).
    """
    if max_steps and state.epoch_step >= max_steps:
        return
    loader.set_epoch(state.epoch)
    skip = state.epoch_step * accumulation
    window = []
    for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
        window.append(batch)
        if len(window) == accumulation:
            yield window
            window = []
            if max_steps and state.epoch_step >= max_steps:
                return
