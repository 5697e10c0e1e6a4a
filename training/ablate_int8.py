"""Which of the classifier's first convolutions its int8 ONNX file keeps in fp32, chosen without test photos.

    python training/ablate_int8.py --model tiny_cats/pretrained/classifier --onnx onnx/model.onnx \
        --output benchmarks/int8_ablation.json

Each variant sets how many convolutions from the input stay fp32 and how many calibration photos
set the activation ranges. The script quantizes the exported fp32 classifier with the export's own
``quantize_classifier`` and settings. It then compares each int8 file with the fp32 one on the
validation photos that are not calibration photos. The validation photos are held out of training,
as the model's ``training_results.json`` says. It reports:

- argmax disagreements: too rare on a few hundred photos to rank variants;
- the mean KL divergence of the int8 file's probabilities from fp32's, which ranks them. The ONNX
  logits already include the temperature, so these are the calibrated probabilities users see;
- the file size;
- latency at batch 1 on one thread, all files timed in turn within one loop, because this CPU's
  speed drifts between runs.

The shipped ``FP32_LEADING_CONVS`` (tiny_cats/onnx/quantize.py) is the choice this table supports.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tiny_cats import TinyCatsImageProcessor
from tiny_cats.data import default_data_dir, load_pets, split_validation, validation_split_of
from tiny_cats.files import write_text
from tiny_cats.onnx.quantize import CALIBRATION_SIZE, FP32_LEADING_CONVS, calibration_draw, quantize_classifier
from tiny_cats.onnx.runtime import ort_session

# (convolutions kept fp32 from the input, calibration photos). EfficientNet-Lite0: 1 = the stem; 3 = + the
# first block (depthwise, projection); 6 and 9 = + the next one and two blocks (expansion, depthwise, projection).
VARIANTS = [(1, CALIBRATION_SIZE), (3, CALIBRATION_SIZE), (6, CALIBRATION_SIZE), (9, CALIBRATION_SIZE),
            (1, 4 * CALIBRATION_SIZE)]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def run(sess, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run(["logits"], {"pixel_values": pixels[i : i + 16]})[0]
                           for i in range(0, len(pixels), 16)]).astype(np.float64)


def interleaved_latency_ms(sessions: dict, pixel: np.ndarray, repeats: int) -> dict:
    """Median ms per batch-1 call of each session, each round timing every session once."""
    for sess in sessions.values():
        sess.run(["logits"], {"pixel_values": pixel})
    times = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(["logits"], {"pixel_values": pixel})
            times[name].append(time.perf_counter() - start)
    return {name: round(1000 * float(np.median(t)), 2) for name, t in times.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model", default="tiny_cats/pretrained/classifier", help="the saved classifier exported")
    parser.add_argument("--onnx", default="onnx/model.onnx", help="its fp32 ONNX file (tiny-cats export)")
    parser.add_argument("--data", default=None, help="Oxford-IIIT Pet folder (default: the usual places)")
    parser.add_argument("--repeats", type=int, default=40, help="latency rounds")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    if data is None:
        raise SystemExit("error: no Oxford-IIIT Pet folder found: pass --data or set TINY_CATS_DATA")
    fp32 = Path(args.onnx)
    if not fp32.is_file():
        raise SystemExit(f"error: no fp32 ONNX file at {fp32}: run `tiny-cats export` first")

    results = Path(args.model) / "training_results.json"
    if not results.is_file():
        raise SystemExit(f"error: no {results}: the study needs the validation split the model was trained beside")
    config = json.loads(results.read_text())["config"]
    if not validation_split_of(config)[0]:
        raise SystemExit(f"error: {args.model} was trained without a validation split: no photos it has not seen")
    processor = TinyCatsImageProcessor.from_pretrained(args.model)
    pixels = lambda images: processor(images, return_tensors="np")["pixel_values"].astype(np.float32)  # noqa: E731
    train = load_pets(data)["train"]
    drawn = calibration_draw(train, count=max(count for _, count in VARIANTS))  # the export's draw, and more
    calibration = pixels([row["image"] for row in drawn])
    calibration_files = set(drawn["file"])
    _, validation = split_validation(train, *validation_split_of(config))
    validation = validation.filter(lambda file: file not in calibration_files, input_columns="file")
    photos = pixels([row["image"] for row in validation])

    rows, sessions = [], {"fp32": ort_session(fp32, num_threads=1)}
    reference = softmax(run(sessions["fp32"], photos))
    with tempfile.TemporaryDirectory(dir=fp32.parent) as scratch:
        for convs, count in VARIANTS:
            name = f"{convs}_convs_fp32_{count}_calibration"
            path = Path(scratch) / f"{name}.onnx"
            quantize_classifier(fp32, path, calibration[:count], leading_convs=convs)
            sessions[name] = ort_session(path, num_threads=1)
            probs = softmax(run(sessions[name], photos))
            kl = (reference * (np.log(reference + 1e-12) - np.log(probs + 1e-12))).sum(axis=1)
            rows.append({"variant": name, "fp32_leading_convs": convs, "calibration_photos": count,
                         "shipped": (convs, count) == (FP32_LEADING_CONVS, CALIBRATION_SIZE),
                         "disagreements": int((reference.argmax(1) != probs.argmax(1)).sum()),
                         "mean_kl": round(float(kl.mean()), 5), "max_kl": round(float(kl.max()), 4),
                         "megabytes": round(path.stat().st_size / 1e6, 3)})
            print(json.dumps(rows[-1]), flush=True)
        latency = interleaved_latency_ms(sessions, photos[:1], args.repeats)
    for row in rows:
        row["ms_batch1_1thread"] = latency[row["variant"]]
    result = {"what": "int8 classifier variants vs its fp32 file (training/ablate_int8.py)", "model": args.model,
              "validation_photos_not_calibration": len(photos), "image_size": int(photos.shape[-1]),
              "fp32_ms_batch1_1thread": latency["fp32"], "variants": rows}
    print(json.dumps(result, indent=2))
    if args.output:
        write_text(json.dumps(result, indent=2) + "\n", args.output)
    return result


if __name__ == "__main__":
    main()
