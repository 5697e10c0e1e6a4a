"""Python ONNX Runtime timings of an export's files, measured like the app's Benchmark page, for comparison.

    nice -n 15 .venv/bin/python frontend/scripts/python_onnx_bench.py /tmp/tc_export

Classifier: forward pass on random pixel values at the manifest's side (batch 1 and 8, 30 repeats after 2 warm-ups).
Generator: one Abyssinian image end to end at 8 steps, guidance 1 and 4 (3 repeats after 1).
Two intra-op threads, like the browser on a 2-core machine. Prints JSON.
"""

import json
import sys

import numpy as np
import torch

from tiny_cats.evaluation.benchmark import latency_stats, time_calls
from tiny_cats.onnx.runtime import load_onnx_generator, ort_session

THREADS = 2


def main(root: str) -> dict:
    out = {}
    with open(f"{root}/onnx/manifest.json") as f:
        side = json.load(f)["classifier"]["preprocessing"]["size"]  # the app feeds this side too
    for precision, path in [("fp32", "onnx/model.onnx"), ("int8", "onnx/model_quantized.onnx")]:
        session = ort_session(f"{root}/{path}", THREADS)
        for batch in (1, 8):
            x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, side, side)).astype(np.float32)
            def classify(x=x, session=session):
                return session.run(["logits"], {"pixel_values": x})

            stats = latency_stats(time_calls(classify, repeats=30, warmup=2), batch, 2)
            out[f"classifier {precision} batch {batch}"] = {
                k: round(stats[k], 2) for k in ("p50_ms", "p95_ms", "throughput_per_s")}
    for precision, quantized in [("fp32", False), ("int8", True)]:
        pipe = load_onnx_generator(root, quantized=quantized, num_threads=THREADS)
        pipe.set_progress_bar_config(disable=True)
        for guidance in (1.0, 4.0):
            def generate(guidance=guidance, pipe=pipe):
                return pipe("Abyssinian", num_inference_steps=8, guidance_scale=guidance,
                            generator=torch.manual_seed(0))

            stats = latency_stats(time_calls(generate, repeats=3, warmup=1), 1, 1)
            out[f"generator {precision} 8 steps guidance {guidance}"] = {
                **{k: round(stats[k], 1) for k in ("p50_ms", "p95_ms")}, "per_step_ms": round(stats["mean_ms"] / 8, 1)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=1))
