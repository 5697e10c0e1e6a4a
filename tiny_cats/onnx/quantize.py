"""int8 quantization of the exported files with ONNX Runtime's quantizer, and the calibration photos.

Choices, and why:
- Classifier int8 = static QDQ quantization (per-channel weights) calibrated on training photos.
  EfficientNet-Lite0 is almost all convolutions, and dynamically quantized convolutions
  (ConvInteger) ran 7-10x slower than fp32 in the browser's wasm backend; quantizing only
  MatMul/Gemm would touch just the final layer (no size gain). Static QDQ quantizes
  convolutions with fixed activation scales, which ONNX Runtime fuses into QLinearConv, and
  shrinks the file 3.5x. The first three convolutions (the stem, which reads the normalised pixels,
  and the first block's depthwise and projection convolutions, which see the largest feature maps)
  and the head's Gemm stay fp32 (``kept_in_fp32``), with every node before them and after the
  head (with ``test_time_flip``, the Concat of each image with its mirror and the averaging of the two
  logits). Chosen on the 221 validation photos that are not calibration photos, by the mean KL
  divergence of the int8 file's calibrated probabilities from fp32's (argmax disagreements are too
  rare there to rank variants: 0 or 1 each), timed side by side: ``training/ablate_int8.py`` ->
  ``benchmarks/int8_ablation.json``. Stem and head only 0.0087 (1 disagreement), + first block 0.0051
  (0; same size, same speed: 12.9 vs 13.6 ms, 1 thread), + two blocks 0.0048 (15% slower), + three
  blocks 0.0033 (26% slower); 256 calibration photos instead of 64: 0.0089. The first block is the
  largest step for no cost, so it is what ships. Test photos, for the record: with stem and head only,
  the bundled classifier (flip on) agreed with fp32 on 98.90% of the 2,191 test photos; quantizing
  flip's Concat and logit average too had given 98.13%.
- Denoiser int8 = dynamic quantization of MatMul/Gemm only: the DiT is almost all linear layers,
  needs no calibration set, and its one convolution (the patch embedding) stays fp32 for the
  same ConvInteger reason.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

CALIBRATION_SIZE = 64
FP32_LEADING_CONVS = 3  # EfficientNet-Lite0: the stem, then the first block's depthwise and projection convs
AGREEMENT_SIZE = 256  # training photos after the calibration ones: int8 vs fp32 agreement

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
    "kept_in_fp32": [f"the first {FP32_LEADING_CONVS} Convs (stem, first block) and every node before them",
                     "Gemm/MatMul (the head) and every node after it"],
}
DENOISER_QUANTIZATION = {"method": "dynamic", "op_types_to_quantize": ["MatMul", "Gemm"], "weight_type": "QInt8",
                         "reduce_range": True}
# reduce_range: 7-bit weights (-64..64). ONNX Runtime's uint8 x int8 kernels on x86 CPUs without
# VNNI (AVX2 / AVX-512 core, e.g. AMD Zen 2/3) add pairs of products in int16 (VPMADDUBSW), which
# saturates when 255 * |w1| + 255 * |w2| > 32767, so a full-range file gives different answers on
# different CPUs: the test suite's int8 classifier agreed with fp32 on 96% of unseen images on a
# Xeon with VNNI and on 50% on an earlier AMD EPYC machine. With 7-bit weights no sum can
# saturate (2 * 255 * 64 = 32640), so every x86 kernel computes the same exact int32 sums.
# Measured on 600 test photos with the earlier 192 px classifier (Xeon with VNNI): agreement with fp32
# 97.8% with 7-bit weights, 99.3% full range (which saturates elsewhere), 98.8% with uint8
# weights (U8U8, saturation-free too, but ONNX Runtime then ran it 9x slower than fp32).


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


def kept_in_fp32(model_path: Path, leading_convs: int = FP32_LEADING_CONVS) -> list:
    """Names of the nodes the classifier's int8 file leaves in fp32: the first ``leading_convs``
    convolutions (the stem, which reads the normalised pixels, and the first block, whose feature
    maps are the largest) and the head's Gemm/MatMul, whose logits the softmax sharpens, with every
    node before those convolutions and after the head (with ``test_time_flip`` the Concat of each
    image and its mirror, and the Slices and Add that average their logits: quantized, they rounded
    the pixels and the logits to 8 bits)."""
    import onnx

    nodes = [node for node in onnx.load(str(model_path)).graph.node if node.op_type != "Constant"]
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]  # nodes are in topological order
    last_fp32_conv = convs[min(leading_convs, len(convs)) - 1]
    head = [i for i, node in enumerate(nodes) if node.op_type in ("Gemm", "MatMul")]
    return [node.name for i, node in enumerate(nodes) if i <= last_fp32_conv or (head and i >= head[0])]


def quantize_classifier(fp32_path: Path, int8_path: Path, calibration_pixels: np.ndarray,
                        leading_convs: int = FP32_LEADING_CONVS) -> None:
    """Static QDQ int8 quantization, activation ranges calibrated on ``calibration_pixels`` (N, 3, S, S);
    ``leading_convs``: how many convolutions from the input stay fp32 (training/ablate_int8.py compares them)."""
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
            nodes_to_exclude=kept_in_fp32(prepared, leading_convs),
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


def calibration_draw(train, count: int = CALIBRATION_SIZE, seed: int = 0, start: int = 0):
    """Rows ``start`` to ``start + count`` of the training split (a ``datasets.Dataset``) shuffled with
    ``seed``: the photos the int8 calibration uses, with their file names."""
    shuffled = train.shuffle(seed=seed)
    # a list, not a range: datasets refuses an empty contiguous range that starts at the end
    return shuffled.select(list(range(min(start, len(shuffled)), min(start + count, len(shuffled)))))


def calibration_images(data: Optional[str] = None, count: int = CALIBRATION_SIZE, seed: int = 0, start: int = 0) -> list:
    """``count`` photos drawn (seeded) from the training split of Oxford-IIIT Pet, from position ``start``
    of the shuffled split (``start=CALIBRATION_SIZE`` gives photos the calibration never saw).

    ``data``: a local Oxford-IIIT Pet folder or Hub dataset id; default ``$TINY_CATS_DATA`` or
    the shared copy beside the checkout.
    """
    from ..data import default_data_dir, load_pets

    source = data or default_data_dir()
    if source is None:
        raise FileNotFoundError(
            "static int8 quantization needs calibration photos: set TINY_CATS_DATA, pass --calibration-data, "
            "or export without quantization (--no-quantize)"
        )
    drawn = calibration_draw(load_pets(source)["train"], count, seed, start)
    return [row["image"] for row in drawn]
