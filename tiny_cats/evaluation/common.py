"""Pieces shared by the evaluation tools: model loading, batched classifier inference, safe writes."""

from __future__ import annotations

import datetime
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..classifier.labels import LABELS
from ..defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model

# The package's one atomic writer is tiny_cats/files.py. These names are re-exported because
# run_generator_eval.py and training/benchmark_throughput.py import them from here (every path
# they save as "png" ends in .png, so save_image writes PNG).
from ..files import save_image as save_png  # noqa: F401
from ..files import write_atomically, write_text  # noqa: F401


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def resolve_data_source(source: Optional[str]) -> str:
    """The given data source, else ``default_data_dir()``; a clear error when neither exists."""
    from ..data import default_data_dir

    source = source or default_data_dir()
    if not source:
        raise FileNotFoundError("no data source: pass --data (a folder or Hub dataset id) or set TINY_CATS_DATA")
    return str(source)


def load_classifier_model(model: Optional[str]) -> Tuple[torch.nn.Module, object, str]:
    """(model in eval mode, image processor, resolved path); refuses a label set other than tiny-cats'.

    The metrics index probability columns by tiny-cats label id, so a model whose
    ``id2label`` is ordered differently would be scored silently wrong.
    """
    from .. import TinyCatsForImageClassification, TinyCatsImageProcessor

    path = resolve_model(model, DEFAULT_CLASSIFIER)
    net = TinyCatsForImageClassification.from_pretrained(path).eval()
    names = [net.config.id2label[i] for i in range(net.config.num_labels)]
    if names != list(LABELS):
        raise ValueError(f"{path}: classifier labels {names} differ from tiny-cats' {list(LABELS)}")
    return net, TinyCatsImageProcessor.from_pretrained(path), path


def load_pipeline(model: Optional[str]):
    from ..generator.pipeline_tiny_dit import TinyDiTPipeline

    path = resolve_model(model, DEFAULT_GENERATOR)
    return TinyDiTPipeline.from_pretrained(path), path


def predict_probs(
    net: torch.nn.Module,
    processor,
    batches: Iterable[Sequence],
    total: Optional[int] = None,
    desc: str = "classifying",
    progress: bool = True,
) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` for an iterable of image batches (PIL or arrays)."""
    outputs: List[np.ndarray] = []
    with torch.inference_mode(), tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for images in batches:
            pixels = processor(list(images), return_tensors="pt")["pixel_values"]
            outputs.append(torch.softmax(net(pixel_values=pixels).logits.float(), dim=-1).numpy())
            bar.update(len(images))
    if not outputs:
        return np.zeros((0, len(LABELS)), dtype=np.float32)
    return np.concatenate(outputs)


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
