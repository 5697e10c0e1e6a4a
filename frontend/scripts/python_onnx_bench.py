"""Python ONNX Runtime timings of an export's files, measured like the app's Benchmark page, for comparison.

    nice -n 15 .venv/bin/python frontend/scripts/python_onnx_bench.py /tmp/tc_export

Classifier: forward pass on random pixel values (batch 1 and 8, 30 repeats after 2 warm-ups).
Generator: one Abyssinian image end to end at 8 steps, guidance 1 and 4 (3 repeats after 1).
Two intra-op threads, like the browser on a 2-core machine. Prints JSON.
"""
import json, sys, time
import numpy as np, torch
from tiny_cats.onnx_runtime import ort_session, load_onnx_generator
from tiny_cats.evaluation.benchmark import latency_stats
root = sys.argv[1]; threads = 2; out = {}
def timed(fn, repeats, warmup):
    for _ in range(warmup): fn()
    t = []
    for _ in range(repeats):
        s = time.perf_counter(); fn(); t.append(time.perf_counter() - s)
    return t
for precision, path in [("fp32", "onnx/model.onnx"), ("int8", "onnx/model_quantized.onnx")]:
    sess = ort_session(f"{root}/{path}", threads)
    for batch in (1, 8):
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
        st = latency_stats(timed(lambda: sess.run(["logits"], {"pixel_values": x}), 30, 2), batch, 2)
        out[f"classifier {precision} batch {batch}"] = {k: round(st[k], 2) for k in ("p50_ms", "p95_ms", "throughput_per_s")}
for precision, q in [("fp32", False), ("int8", True)]:
    pipe = load_onnx_generator(root, quantized=q, num_threads=threads); pipe.set_progress_bar_config(disable=True)
    for g in (1.0, 4.0):
        st = latency_stats(timed(lambda: pipe("Abyssinian", num_inference_steps=8, guidance_scale=g, generator=torch.manual_seed(0)), 3, 1), 1, 1)
        out[f"generator {precision} 8 steps guidance {g}"] = {k: round(st[k], 1) for k in ("p50_ms", "p95_ms")} | {"per_step_ms": round(st["mean_ms"] / 8, 1)}
print(json.dumps(out, indent=1))
