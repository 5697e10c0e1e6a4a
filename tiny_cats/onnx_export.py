"""Export both tiny-cats models to ONNX with Optimum, quantize them to int8, check them, describe them.

Writes, under a model package root ``out_dir`` (paths from :mod:`tiny_cats.layout`):
``onnx/model.onnx`` + ``onnx/model_quantized.onnx`` (classifier), ``onnx/transformer.onnx`` +
``onnx/transformer_quantized.onnx`` (the generator's denoiser; guidance and the scheduler stay
outside the graph) and ``onnx/manifest.json``, the one file the browser app and the Hub upload read.

Choices, and why:
- Export runs through Optimum's exporter (``optimum.exporters.onnx.export``) with an ``OnnxConfig``
  per model: :class:`~tiny_cats.classifier.onnx_config_tiny_cats.TinyCatsOnnxConfig` (also registered
  with ``TasksManager`` for ``optimum-cli``) and :class:`TinyDiTOnnxConfig`.
- Classifier int8 = static QDQ quantization (per-channel weights) calibrated on training photos.
  EfficientNet-Lite0 is almost all convolutions, and dynamically quantized convolutions
  (ConvInteger) ran 7-10x slower than fp32 in the browser's wasm backend; quantizing only
  MatMul/Gemm would touch just the final layer (no size gain). Static QDQ quantizes
  convolutions with fixed activation scales, which ONNX Runtime fuses into QLinearConv, and
  shrinks the file 3.5x. On the trained 192 px classifier it agreed with fp32 on 98.7% of 300
  test photos (accuracy 92.3% -> 91.7%) and ran 2.1x faster on one native CPU thread; its wasm
  speed is for the benchmark to measure.
- Denoiser int8 = dynamic quantization of MatMul/Gemm only: the DiT is almost all linear layers,
  needs no calibration set, and its one convolution (the patch embedding) stays fp32 for the
  same ConvInteger reason.
- Every file is written to a staging folder inside ``out_dir`` and moved into place only after
  all exports, quantizations and parity checks passed, manifest last: an interrupted or failed
  export leaves the previous files untouched and no partial ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np
import torch

from .layout import CLASSIFIER_ONNX, CLASSIFIER_ONNX_INT8, GENERATOR_ONNX, GENERATOR_ONNX_INT8, ONNX_MANIFEST
from .onnx_runtime import DENOISER_OUTPUT, OnnxTinyDiTTransformer, ort_session

PathLike = Union[str, os.PathLike]

MANIFEST_FORMAT_VERSION = 1
# Largest max-abs difference accepted between PyTorch and the fp32 ONNX file; an export above it fails.
# Logits reach tens, and fp32 rounding differs by ~5e-6 of that after 16 blocks (ORT runs
# BatchNorm folded into the convolutions), hence 1e-3 for logits; velocities are of order 1.
CLASSIFIER_LOGITS_ATOL = 1e-3
DENOISER_VELOCITY_ATOL = 1e-4
# Generated images (values in [0, 1]): a quarter of one 8-bit level.
PIPELINE_IMAGE_ATOL = 1e-3
PARITY_BATCH_SIZES = (1, 4)
CALIBRATION_SIZE = 64
AGREEMENT_SIZE = 256  # training photos after the calibration ones: int8 vs fp32 agreement
# Pipeline check run at export time: few images, few steps, guidance on (both branches used).
PIPELINE_CHECK = {"breeds": ("Bengal", "Siamese"), "num_inference_steps": 8, "guidance_scale": 4.0, "seed": 0}
# TinyCatsImageProcessor.preprocess_one: squash-resize (no crop), bicubic, to [0, 1], then normalise.
CLASSIFIER_RESIZE = {"mode": "squash", "resample": "bicubic", "rescale_factor": 1 / 255, "channel_order": "RGB", "layout": "NCHW"}


# ---------------------------------------------------------------- Optimum export configurations


def _tiny_dit_onnx_config_classes():
    """Optimum classes for the denoiser, built on first use so that importing this module stays cheap."""
    from optimum.exporters.onnx.config import VisionOnnxConfig
    from optimum.utils.input_generators import DummyInputGenerator
    from optimum.utils.normalized_config import NormalizedConfig

    class TinyDiTDummyInputGenerator(DummyInputGenerator):
        """Noisy images, flow-matching timesteps in [0, 1000] and class ids including the null label."""

        SUPPORTED_INPUT_NAMES = ("sample", "timestep", "class_labels")

        def __init__(self, task, normalized_config, batch_size: int = 2, **kwargs):
            self.task = task
            self.batch_size = batch_size
            self.size = normalized_config.image_size
            self.channels = normalized_config.num_channels
            self.num_labels = normalized_config.num_classes + 1

        def generate(self, input_name, framework="pt", int_dtype="int64", float_dtype="fp32"):
            if input_name == "sample":
                shape = [self.batch_size, self.channels, self.size, self.size]
                return self.random_float_tensor(shape, -1.0, 1.0, framework=framework, dtype=float_dtype)
            if input_name == "timestep":
                return self.random_float_tensor([self.batch_size], 0.0, 1000.0, framework=framework, dtype=float_dtype)
            return self.random_int_tensor([self.batch_size], self.num_labels, framework=framework, dtype=int_dtype)

    class TinyDiTOnnxConfig(VisionOnnxConfig):
        """``(sample, timestep, class_labels)`` -> ``out_sample`` (the velocity), dynamic batch.

        The spatial size is fixed at ``sample_size``: the position embedding is a constant of
        the grid size, computed in Python, so the traced graph holds it for one size only.
        """

        NORMALIZED_CONFIG_CLASS = NormalizedConfig.with_args(
            image_size="sample_size", num_channels="in_channels", num_classes="num_classes", allow_new=True
        )
        DUMMY_INPUT_GENERATOR_CLASSES = (TinyDiTDummyInputGenerator,)
        ATOL_FOR_VALIDATION = DENOISER_VELOCITY_ATOL

        @property
        def inputs(self):
            return {"sample": {0: "batch_size"}, "timestep": {0: "batch_size"}, "class_labels": {0: "batch_size"}}

        @property
        def outputs(self):
            return {DENOISER_OUTPUT: {0: "batch_size"}}

        @property
        def torch_to_onnx_output_map(self):
            return {"sample": DENOISER_OUTPUT}

    return TinyDiTOnnxConfig


def _optimum_export(model: torch.nn.Module, onnx_config, path: Path) -> None:
    """Optimum's low-level exporter, quietly (the model's input checks trip harmless tracer warnings)."""
    from optimum.exporters.onnx import export

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        export(model.eval(), onnx_config, path)


def register_onnx_config() -> None:
    """Register the classifier's ``OnnxConfig`` for model type ``tiny_cats`` with Optimum's ``TasksManager``.

    Done on first export rather than on import, so that the ``tiny-cats`` CLI, which imports this
    module for its parser, does not pay for importing Optimum.
    """
    from .classifier.onnx_config_tiny_cats import register_onnx_config as register

    if not register():
        raise ImportError("ONNX export needs optimum-onnx: pip install 'tiny-cats[onnx]'")


def export_classifier_onnx(model, path: Path) -> None:
    """The classifier (a ``TinyCatsForImageClassification``) to one fp32 ONNX file."""
    from .classifier.onnx_config_tiny_cats import TinyCatsOnnxConfig

    register_onnx_config()
    _optimum_export(model, TinyCatsOnnxConfig(model.config, task="image-classification"), path)


def export_denoiser_onnx(transformer, path: Path) -> None:
    """The generator's ``TinyDiTTransformer2DModel`` to one fp32 ONNX file."""
    onnx_config = _tiny_dit_onnx_config_classes()(transformer.config, task="semantic-segmentation")
    _optimum_export(transformer, onnx_config, path)


# ---------------------------------------------------------------- int8 quantization


def _calibration_reader(pixel_values: np.ndarray):
    """Feeds one image at a time: equal shapes are what ORT's histogram calibrators need."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.images = iter(np.asarray(pixel_values, dtype=np.float32))

        def get_next(self):
            image = next(self.images, None)
            return None if image is None else {"pixel_values": image[None]}

    return Reader()


# The quantizer settings, in ONNX Runtime's names; the manifest records these same dicts.
# Per-channel weights matter: per-tensor cost the trained classifier 8 points of accuracy.
CLASSIFIER_QUANTIZATION = {
    "method": "static",
    "quant_format": "QDQ",
    "per_channel": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "reduce_range": True,
}
DENOISER_QUANTIZATION = {"method": "dynamic", "op_types_to_quantize": ["MatMul", "Gemm"], "weight_type": "QInt8",
                         "reduce_range": True}
# reduce_range: 7-bit weights (-64..64). ONNX Runtime's uint8 x int8 kernels on x86 CPUs without
# VNNI (AVX2 / AVX-512 core, e.g. AMD Zen 2/3) add pairs of products in int16 (VPMADDUBSW), which
# saturates when 255 * |w1| + 255 * |w2| > 32767, so a full-range file gives different answers on
# different CPUs: the test suite's int8 classifier agreed with fp32 on 96% of unseen images on a
# Xeon with VNNI and on 50% on an earlier AMD EPYC machine. With 7-bit weights no sum can
# saturate (2 * 255 * 64 = 32640), so every x86 kernel computes the same exact int32 sums.
# Measured on 600 test photos with the bundled classifier (Xeon with VNNI): agreement with fp32
# 97.8% with 7-bit weights, 99.3% full range (which saturates elsewhere), 98.8% with uint8
# weights (U8U8, saturation-free too, but ONNX Runtime then ran it 9x slower than fp32).


@contextlib.contextmanager
def _prepared_for_quantization(fp32_path: Path):
    """ONNX Runtime's recommended pre-processing, in a scratch folder beside ``fp32_path``.

    It folds the exporter's Constant and Identity nodes (so every bias is an initializer the
    quantizer can handle) and annotates shapes.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=fp32_path.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        yield prepared


def quantize_classifier(fp32_path: Path, int8_path: Path, calibration_pixels: np.ndarray) -> None:
    """Static QDQ int8 quantization, activation ranges calibrated on ``calibration_pixels`` (N, 3, S, S)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    settings = CLASSIFIER_QUANTIZATION
    with _prepared_for_quantization(fp32_path) as prepared:
        quantize_static(
            str(prepared),
            str(int8_path),
            _calibration_reader(calibration_pixels),
            quant_format=QuantFormat[settings["quant_format"]],
            per_channel=settings["per_channel"],
            activation_type=QuantType[settings["activation_type"]],
            weight_type=QuantType[settings["weight_type"]],
            calibrate_method=CalibrationMethod[settings["calibrate_method"]],
            reduce_range=settings["reduce_range"],
        )


def quantize_denoiser(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantization of the denoiser's MatMul/Gemm weights (no ConvInteger)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = DENOISER_QUANTIZATION
    with _prepared_for_quantization(fp32_path) as prepared:
        quantize_dynamic(
            str(prepared),
            str(int8_path),
            op_types_to_quantize=settings["op_types_to_quantize"],
            weight_type=QuantType[settings["weight_type"]],
            reduce_range=settings["reduce_range"],
        )


def calibration_images(data: Optional[str] = None, count: int = CALIBRATION_SIZE, seed: int = 0, start: int = 0) -> list:
    """``count`` photos drawn (seeded) from the training split of Oxford-IIIT Pet, from position ``start``
    of the shuffled split (``start=CALIBRATION_SIZE`` gives photos the calibration never saw).

    ``data``: a local Oxford-IIIT Pet folder or Hub dataset id; default ``$TINY_CATS_DATA`` or
    the shared copy beside the checkout.
    """
    from .data import default_data_dir, load_pets

    source = data or default_data_dir()
    if source is None:
        raise FileNotFoundError(
            "static int8 quantization needs calibration photos: set TINY_CATS_DATA, pass --calibration-data, "
            "or export without quantization (--no-quantize)"
        )
    train = load_pets(source)["train"].shuffle(seed=seed)
    stop = min(start + count, len(train))
    return [train[i]["image"] for i in range(start, stop)]


# ---------------------------------------------------------------- parity checks


def _as_classifier(model_or_dir):
    from . import TinyCatsForImageClassification

    if isinstance(model_or_dir, (str, os.PathLike)):
        return TinyCatsForImageClassification.from_pretrained(model_or_dir).eval()
    return model_or_dir.eval()


def _as_pipeline(pipeline_or_dir):
    from .generator.pipeline_tiny_dit import TinyDiTPipeline

    if isinstance(pipeline_or_dir, (str, os.PathLike)):
        pipeline_or_dir = TinyDiTPipeline.from_pretrained(pipeline_or_dir)
    pipeline_or_dir.set_progress_bar_config(disable=True)
    return pipeline_or_dir


def _session(session_or_path, num_threads: Optional[int] = None):
    return ort_session(session_or_path, num_threads) if isinstance(session_or_path, (str, os.PathLike)) else session_or_path


def verify_classifier_parity(
    model_or_dir, onnx_path, batch_sizes: Sequence[int] = PARITY_BATCH_SIZES, seed: int = 0, num_threads: Optional[int] = None
) -> Dict[int, float]:
    """Max abs logit difference, PyTorch vs ONNX, per batch size, on seeded inputs in [-1, 1]."""
    model, session = _as_classifier(model_or_dir), _session(onnx_path, num_threads)
    size, channels = model.config.image_size, model.config.num_channels
    generator, diffs = torch.Generator().manual_seed(seed), {}
    for batch in batch_sizes:
        pixels = torch.rand(batch, channels, size, size, generator=generator) * 2 - 1
        with torch.no_grad():
            expected = model(pixel_values=pixels).logits.numpy()
        (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
        diffs[batch] = float(np.abs(logits - expected).max())
    return diffs


def verify_generator_parity(
    pipeline_or_dir, onnx_path, batch_sizes: Sequence[int] = PARITY_BATCH_SIZES, seed: int = 0, num_threads: Optional[int] = None
) -> Dict[int, float]:
    """Max abs velocity difference of the denoiser, PyTorch vs ONNX, per batch size.

    Inputs are seeded noise, timesteps spread over [0, 1000] and class ids including the null label.
    """
    transformer = _as_pipeline(pipeline_or_dir).transformer
    denoiser = OnnxTinyDiTTransformer(_session(onnx_path, num_threads), dict(transformer.config))
    size, channels = transformer.config.sample_size, transformer.config.in_channels
    generator, diffs = torch.Generator().manual_seed(seed), {}
    for batch in batch_sizes:
        sample = torch.randn(batch, channels, size, size, generator=generator)
        timestep = torch.rand(batch, generator=generator) * 1000
        labels = torch.randint(0, transformer.null_class_id + 1, (batch,), generator=generator)
        with torch.no_grad():
            expected = transformer(sample, timestep, labels).sample
        diffs[batch] = float((denoiser(sample, timestep, labels).sample - expected).abs().max())
    return diffs


def verify_pipeline_parity(
    pipeline_or_dir,
    onnx_path,
    breeds: Sequence[str] = PIPELINE_CHECK["breeds"],
    num_inference_steps: int = PIPELINE_CHECK["num_inference_steps"],
    guidance_scale: float = PIPELINE_CHECK["guidance_scale"],
    seed: int = PIPELINE_CHECK["seed"],
    num_threads: Optional[int] = None,
) -> float:
    """Max abs difference of generated images (values in [0, 1]), PyTorch vs ONNX denoiser, same seed."""
    from .generator.pipeline_tiny_dit import TinyDiTPipeline

    pipe = _as_pipeline(pipeline_or_dir)
    denoiser = OnnxTinyDiTTransformer(_session(onnx_path, num_threads), dict(pipe.transformer.config))
    onnx_pipe = TinyDiTPipeline(transformer=denoiser, scheduler=pipe.scheduler, id2label=pipe.config.id2label)
    onnx_pipe.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, output_type="np")
    expected = pipe(list(breeds), generator=torch.manual_seed(seed), **kwargs).images
    images = onnx_pipe(list(breeds), generator=torch.manual_seed(seed), **kwargs).images
    return float(np.abs(images - expected).max())


def top1_agreement(session_a, session_b, pixel_values: np.ndarray, num_threads: Optional[int] = None) -> float:
    """Share of images on which two classifier files (e.g. fp32 and int8) pick the same label."""
    feeds = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)}
    (a,) = _session(session_a, num_threads).run(["logits"], feeds)
    (b,) = _session(session_b, num_threads).run(["logits"], feeds)
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def _check(name: str, diff: float, atol: float) -> None:
    if not diff <= atol:  # also catches NaN
        raise RuntimeError(f"{name}: ONNX differs from PyTorch by {diff:.3g} (tolerance {atol:g}); export refused")


# ---------------------------------------------------------------- manifest


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
            "size": processor.size,
            "image_mean": list(processor.image_mean),
            "image_std": list(processor.image_std),
            **CLASSIFIER_RESIZE,
        },
        "labels": [config.id2label[i] for i in range(config.num_labels)],
    }


def _default_call_arguments(pipeline_class) -> dict:
    parameters = inspect.signature(pipeline_class.__call__).parameters
    return {name: parameters[name].default for name in ("num_inference_steps", "guidance_scale")}


def generator_manifest(pipe, files: Dict[str, dict]) -> dict:
    """The generator's section: files, sampling settings, labels and scheduler, from the pipeline's configs."""
    config = dict(pipe.transformer.config)
    defaults = _default_call_arguments(type(pipe))
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
    from . import __version__

    kept = {k: v for k, v in (previous or {}).items() if k in ("classifier", "generator")}
    return {"format_version": MANIFEST_FORMAT_VERSION, "tiny_cats_version": __version__, **kept, **sections}


# ---------------------------------------------------------------- staging and atomic commit


@contextlib.contextmanager
def staging_dir(out_dir: Path):
    """A hidden scratch folder inside ``out_dir`` (same file system, so moves are renames), always removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".onnx-export-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def commit(stage: Path, out_dir: Path, relatives: Iterable[str], stale: Iterable[str] = ()) -> None:
    """Rename staged files into ``out_dir`` (each rename atomic; the manifest goes last) and drop ``stale`` ones."""
    relatives = sorted(relatives, key=lambda r: r == ONNX_MANIFEST)
    for relative in relatives:
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / relative, out_dir / relative)
    for relative in stale:
        (out_dir / relative).unlink(missing_ok=True)


def _read_previous_manifest(out_dir: Path) -> Optional[dict]:
    path = out_dir / ONNX_MANIFEST
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


# ---------------------------------------------------------------- staging each model


def _pixel_values(processor, images: Sequence) -> np.ndarray:
    return np.concatenate([processor(images[i : i + 16], return_tensors="np")["pixel_values"] for i in range(0, len(images), 16)])


def stage_classifier(
    model_dir: PathLike, stage: Path, quantize: bool, images: Optional[Sequence] = None, data: Optional[str] = None,
    check_images: Optional[Sequence] = None,
) -> dict:
    """Export (and quantize) the classifier into ``stage``; returns its manifest section."""
    from . import TinyCatsForImageClassification, TinyCatsImageProcessor

    model = TinyCatsForImageClassification.from_pretrained(model_dir).eval()
    processor = TinyCatsImageProcessor.from_pretrained(model_dir)
    export_classifier_onnx(model, stage / CLASSIFIER_ONNX)
    diff = max(verify_classifier_parity(model, stage / CLASSIFIER_ONNX).values())
    _check("classifier logits", diff, CLASSIFIER_LOGITS_ATOL)
    files = {"fp32": describe_onnx_file(stage, CLASSIFIER_ONNX, precision="fp32", max_abs_logit_diff_vs_pytorch=diff)}
    if quantize:
        if images is None:
            images = calibration_images(data)
            if check_images is None:
                check_images = calibration_images(data, count=AGREEMENT_SIZE, start=len(images))
        pixels = _pixel_values(processor, list(images))
        quantize_classifier(stage / CLASSIFIER_ONNX, stage / CLASSIFIER_ONNX_INT8, pixels)
        check = list(check_images or [])
        agreement = None  # measured only on photos the calibration did not see
        if check:
            agreement = top1_agreement(stage / CLASSIFIER_ONNX, stage / CLASSIFIER_ONNX_INT8, _pixel_values(processor, check))
        quantization = {**CLASSIFIER_QUANTIZATION, "calibration_images": len(pixels)}
        files["int8"] = describe_onnx_file(
            stage, CLASSIFIER_ONNX_INT8, precision="int8", quantization=quantization,
            top1_agreement_with_fp32_on_held_out_images=agreement, held_out_images=len(check),
        )
    return classifier_manifest(model.config, processor, files)


def stage_generator(pipeline_dir: PathLike, stage: Path, quantize: bool) -> dict:
    """Export (and quantize) the generator's denoiser into ``stage``; returns its manifest section."""
    pipe = _as_pipeline(pipeline_dir)
    export_denoiser_onnx(pipe.transformer, stage / GENERATOR_ONNX)
    velocity = max(verify_generator_parity(pipe, stage / GENERATOR_ONNX).values())
    _check("denoiser velocity", velocity, DENOISER_VELOCITY_ATOL)
    images = verify_pipeline_parity(pipe, stage / GENERATOR_ONNX)
    _check("generated images", images, PIPELINE_IMAGE_ATOL)
    checks = {"max_abs_velocity_diff_vs_pytorch": velocity, "max_abs_image_diff_vs_pytorch": images}
    files = {"fp32": describe_onnx_file(stage, GENERATOR_ONNX, precision="fp32", **checks)}
    if quantize:
        quantize_denoiser(stage / GENERATOR_ONNX, stage / GENERATOR_ONNX_INT8)
        checks = {
            "max_abs_velocity_diff_vs_pytorch": max(verify_generator_parity(pipe, stage / GENERATOR_ONNX_INT8).values()),
            "max_abs_image_diff_vs_pytorch": verify_pipeline_parity(pipe, stage / GENERATOR_ONNX_INT8),
        }
        files["int8"] = describe_onnx_file(
            stage, GENERATOR_ONNX_INT8, precision="int8", quantization=DENOISER_QUANTIZATION, **checks
        )
    return generator_manifest(pipe, files)


# ---------------------------------------------------------------- public API


def export_all(
    classifier_dir: Optional[PathLike],
    generator_dir: Optional[PathLike],
    out_dir: PathLike,
    quantize: bool = True,
    calibration_images: Optional[Sequence] = None,
    calibration_data: Optional[str] = None,
    check_images: Optional[Sequence] = None,
) -> dict:
    """Export the classifier and/or the generator into ``out_dir/onnx/`` and write the manifest.

    Either model may be ``None`` (its manifest section, if any, is kept). Classifier calibration
    photos: ``calibration_images`` (PIL images), else :data:`CALIBRATION_SIZE` training photos from
    ``calibration_data`` (default: the local Oxford-IIIT Pet copy). int8 agreement with fp32 is measured
    on ``check_images``, else on :data:`AGREEMENT_SIZE` other training photos. Returns the manifest written.
    """
    out_dir = Path(out_dir)
    sections, written, stale = {}, [], []
    with staging_dir(out_dir) as stage:
        if classifier_dir is not None:
            sections["classifier"] = stage_classifier(
                classifier_dir, stage, quantize, calibration_images, calibration_data, check_images)
            written.append(CLASSIFIER_ONNX)
            (written if quantize else stale).append(CLASSIFIER_ONNX_INT8)
        if generator_dir is not None:
            sections["generator"] = stage_generator(generator_dir, stage, quantize)
            written.append(GENERATOR_ONNX)
            (written if quantize else stale).append(GENERATOR_ONNX_INT8)
        manifest = build_manifest(sections, _read_previous_manifest(out_dir))
        (stage / ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        commit(stage, out_dir, written + [ONNX_MANIFEST], stale)
    return manifest


def export_classifier(model_dir: PathLike, out_dir: PathLike, quantize: bool = True, **calibration) -> dict:
    """Export the classifier only (see :func:`export_all`); returns the manifest."""
    return export_all(model_dir, None, out_dir, quantize, **calibration)


def export_generator(pipeline_dir: PathLike, out_dir: PathLike, quantize: bool = True) -> dict:
    """Export the generator's denoiser only (see :func:`export_all`); returns the manifest."""
    return export_all(None, pipeline_dir, out_dir, quantize)


# ---------------------------------------------------------------- CLI


def _print_summary(manifest: dict, sections: Sequence[str]) -> None:
    for section in sections:
        for precision, entry in manifest[section]["files"].items():
            checks = ", ".join(f"{k}={v:.3g}" for k, v in entry.items() if isinstance(v, float))
            print(f"{entry['path']:<34} {entry['bytes']:>11,d} bytes  {precision:<5} {checks}")
    print(f"manifest: {ONNX_MANIFEST}")


def cmd_export(args) -> int:
    from .defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model

    classifier = resolve_model(args.classifier, DEFAULT_CLASSIFIER)
    generator = resolve_model(args.generator, DEFAULT_GENERATOR)
    calibration = {"calibration_data": args.calibration_data}
    try:
        manifest = export_all(classifier, generator, args.output, quantize=not args.no_quantize, **calibration)
    except RuntimeError as err:  # a failed parity check: nothing was written
        print(f"tiny-cats export: error: {err}", file=sys.stderr)
        return 1
    print(f"exported to {Path(args.output) / 'onnx'}")
    _print_summary(manifest, ("classifier", "generator"))
    return 0
