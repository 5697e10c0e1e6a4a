"""Python ONNX Runtime timings of an export's files, measured like the app's Benchmark page, for comparison.

    nice -n 15 .venv/bin/python frontend/scripts/python_onnx_bench.py /tmp/tc_export

Classifier: forward pass on random pixel values at the manifest's side (batch 1 and 8, 30 repeats after 2 warm-ups).
Generator: one Abyssinian image end to end at the manifest's default steps, with guidance 1 and the
manifest's default guidance (3 repeats after 1), like the app's Benchmark page.
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
        manifest = json.load(f)
    side = manifest["classifier"]["preprocessing"]["size"]  # the app feeds this side too
    steps, default_guidance = (manifest["generator"]["sampling"][k] for k in ("num_inference_steps", "guidance_scale"))
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
        for guidance in (1.0, default_guidance):
            def generate(guidance=guidance, pipe=pipe):
                return pipe("Abyssinian", num_inference_steps=steps, guidance_scale=guidance,
                            generator=torch.manual_seed(0))

            stats = latency_stats(time_calls(generate, repeats=3, warmup=1), 1, 1)
            out[f"generator {precision} {steps} steps guidance {guidance}"] = {
                **{k: round(stats[k], 1) for k in ("p50_ms", "p95_ms")}, "per_step_ms": round(stats["mean_ms"] / steps, 1)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), indent=1))
