"""``onnx/manifest.json``: what the browser app and the Hub upload know about the exported files.

Every value is read from a file: each ONNX file's size, checksum, opset and graph inputs/outputs
from the file itself; preprocessing, labels, sampling defaults and the scheduler from the saved
model configs. Paths come from :mod:`tiny_cats.layout`; ``package_dir`` is a model package root.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

from ..defaults import pipeline_defaults
from ..layout import ONNX_MANIFEST

PathLike = Union[str, os.PathLike]

MANIFEST_FORMAT_VERSION = 1
# TinyCatsImageProcessor.preprocess_one: squash-resize (no crop), bicubic, to [0, 1], then normalise.
CLASSIFIER_RESIZE = {"mode": "squash", "resample": "bicubic", "rescale_factor": 1 / 255, "channel_order": "RGB", "layout": "NCHW"}


def _value_info(value) -> dict:
    from onnx.helper import tensor_dtype_to_np_dtype

    tensor = value.type.tensor_type
    shape = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
    return {"name": value.name, "dtype": tensor_dtype_to_np_dtype(tensor.elem_type).name, "shape": shape}


def describe_onnx_file(root: Path, relative: str, **extra) -> dict:
    """Path, size, checksum, opset and graph inputs/outputs of one exported file, read from the file."""
    import onnx

    path = root / relative
    graph_model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in graph_model.graph.initializer}
    opset = next(o.version for o in graph_model.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "path": relative,
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "opset": opset,
        "inputs": [_value_info(v) for v in graph_model.graph.input if v.name not in initializers],
        "outputs": [_value_info(v) for v in graph_model.graph.output],
        **extra,
    }


def classifier_manifest(config, processor, files: Dict[str, dict]) -> dict:
    """The classifier's section: files, preprocessing and labels in id order, from its saved configs."""
    return {
        "model_type": config.model_type,
        "backbone": config.backbone,
        "files": files,
        "preprocessing": {
            "size": processor.size["height"],  # square; the web app reads one side
            "image_mean": list(processor.image_mean),
            "image_std": list(processor.image_std),
            **CLASSIFIER_RESIZE,
        },
        "labels": [config.id2label[i] for i in range(config.num_labels)],
    }


def generator_manifest(pipe, files: Dict[str, dict]) -> dict:
    """The generator's section: files, sampling settings, labels and scheduler, from the pipeline's configs."""
    config = dict(pipe.transformer.config)
    defaults = {k: v for k, v in pipeline_defaults(pipe).items() if k in ("num_inference_steps", "guidance_scale")}
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(defaults["num_inference_steps"])
    id2label = {int(k): v for k, v in pipe.config.id2label.items()}
    return {
        "files": files,
        "sample_size": config["sample_size"],
        "in_channels": config["in_channels"],
        "num_classes": config["num_classes"],
        "null_class_id": pipe.transformer.null_class_id,
        "labels": [id2label[i] for i in range(config["num_classes"])],
        "transformer_config": {k: v for k, v in config.items() if not k.startswith("_")},
        "scheduler": {
            "class_name": type(pipe.scheduler).__name__,
            "config": {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")},
            "default_schedule": {"timesteps": scheduler.timesteps.tolist(), "sigmas": scheduler.sigmas.tolist()},
        },
        "sampling": {
            **defaults,
            "initial_noise": "standard normal, shape (batch, in_channels, sample_size, sample_size)",
            "guidance": "run labels and null_class_id as one batch; velocity = uncond + guidance_scale * (cond - uncond)",
            "output": "image = clamp(sample / 2 + 0.5, 0, 1)",
        },
    }


def build_manifest(sections: dict, previous: Optional[dict] = None) -> dict:
    """Top-level manifest; a section not exported this time is kept from ``previous``."""
    from .. import __version__

    kept = {k: v for k, v in (previous or {}).items() if k in ("classifier", "generator")}
    return {"format_version": MANIFEST_FORMAT_VERSION, "tiny_cats_version": __version__, **kept, **sections}


def read_manifest(package_dir: PathLike) -> dict:
    """The manifest of a model package; a clear error when there is none."""
    path = Path(package_dir) / ONNX_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX manifest at {path}; run `tiny-cats export` first")
    return json.loads(path.read_text())


def read_previous_manifest(package_dir: PathLike) -> Optional[dict]:
    """The manifest a previous export left, or ``None`` (absent or unreadable: it is rewritten anyway)."""
    try:
        return read_manifest(package_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
