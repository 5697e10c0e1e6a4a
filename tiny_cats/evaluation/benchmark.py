"""CPU inference benchmark of the classifier (PyTorch eager, ONNX Runtime fp32/int8) and the generator.

Writes ``benchmarks/inference.json``. What is measured, so numbers stay comparable:

* classifier: the model forward on preprocessed ``pixel_values`` (no decoding or resizing), at
  batch 1 and 8; ONNX models are timed only when ``onnx/model.onnx`` / ``onnx/model_quantized.onnx``
  exist in the package folder;
* generator: one image end to end (noise, every denoising step, conversion to PIL) at 8, 25 and
  50 steps, with classifier-free guidance off (``guidance_scale`` 1.0: one forward per step) and on
  (two); ``per_step_ms`` is the per-image mean divided by the step count;
* warm-up calls run first and are excluded; latency percentiles come from the timed calls;
* memory: RSS is sampled every few milliseconds by a thread from before loading to the last call
  (``rss_peak_delta_mb``: highest RSS minus the baseline; approximate, since freed memory may not
  return to the OS). ``tracemalloc_peak_mb`` is the Python-heap peak during loading and warm-up
  only (tracing would slow the timed calls); it does not see tensors allocated in C++.
"""

from __future__ import annotations

import platform
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import psutil
import torch
from tqdm.auto import tqdm

from .. import layout
from ..defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, pipeline_defaults, resolve_model
from .common import load_classifier_model, load_pipeline, utc_now
from .schemas import BENCHMARK_SCHEMA, SCHEMA_VERSION, write_json
from .settings import CLASSIFIER_BATCH_SIZES, GENERATOR_STEPS  # defaults shared with the CLI

GENERATOR_BREED = "Abyssinian"
MB = 1024 * 1024


# ----------------------------------------------------------------------------- measuring


def time_calls(fn: Callable[[], object], repeats: int, warmup: int) -> List[float]:
    """Seconds per timed call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def latency_stats(seconds: Sequence[float], batch_size: int, warmup: int) -> Dict[str, Any]:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    mean = float(ms.mean())
    return {
        "batch_size": batch_size,
        "repeats": len(ms),
        "warmup": warmup,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": mean,
        "min_ms": float(ms.min()),
        "throughput_per_s": batch_size * 1000.0 / mean if mean > 0 else 0.0,
    }


class MemoryMonitor:
    """Samples this process's RSS in a thread; traces the Python heap until ``stop_tracing``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.process = psutil.Process()
        self.interval_s = interval_s
        self.baseline = self.peak = self.process.memory_info().rss
        self.trace_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._traced_by_us = False

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> "MemoryMonitor":
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            self._traced_by_us = True
        tracemalloc.reset_peak()
        self._thread.start()
        return self

    def stop_tracing(self) -> None:
        if tracemalloc.is_tracing() and self.trace_peak == 0:
            self.trace_peak = tracemalloc.get_traced_memory()[1]
            if self._traced_by_us:
                tracemalloc.stop()

    def __exit__(self, *exc) -> None:
        self.stop_tracing()
        self._stop.set()
        self._thread.join()
        self.end = self.process.memory_info().rss
        self.peak = max(self.peak, self.end)

    def report(self) -> Dict[str, float]:
        return {
            "rss_baseline_mb": round(self.baseline / MB, 2),
            "rss_peak_delta_mb": round((self.peak - self.baseline) / MB, 2),
            "rss_end_delta_mb": round((self.end - self.baseline) / MB, 2),
            "tracemalloc_peak_mb": round(self.trace_peak / MB, 2),
        }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def onnxruntime_version() -> Optional[str]:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def environment(threads: int) -> Dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "threads": threads,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version(),
    }


# ----------------------------------------------------------------------------- classifier


def classifier_inputs(image_size: int, batch_size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32)


def bench_torch_classifier(path: str, batch_sizes, repeats: int, warmup: int, seed: int) -> Tuple[Dict[str, Any], int]:
    """(runtime entry, the processor's image size, which the ONNX runs reuse)."""
    with MemoryMonitor() as memory:
        started = time.perf_counter()
        net, processor, resolved = load_classifier_model(path)
        load_seconds = time.perf_counter() - started
        batches = []
        for batch in batch_sizes:
            pixels = torch.from_numpy(classifier_inputs(processor.size["height"], batch, seed))

            def forward(pixels=pixels):
                with torch.inference_mode():
                    return net(pixel_values=pixels).logits

            for _ in range(warmup):
                forward()
            memory.stop_tracing()
            batches.append(latency_stats(time_calls(forward, repeats, 0), batch, warmup))
    return {"runtime": "pytorch_eager", "model_path": str(resolved), "load_seconds": load_seconds,
            "memory": memory.report(), "batches": batches, "skipped_batch_sizes": {}}, processor.size["height"]


def bench_onnx_classifier(path: Path, runtime: str, image_size: int, batch_sizes, repeats: int, warmup: int,
                          seed: int, threads: int) -> Dict[str, Any]:
    from ..onnx.runtime import ort_session

    with MemoryMonitor() as memory:
        started = time.perf_counter()
        session = ort_session(path, threads)
        load_seconds = time.perf_counter() - started
        fixed_batch = session.get_inputs()[0].shape[0]
        batches, skipped = [], {}
        for batch in batch_sizes:
            if isinstance(fixed_batch, int) and fixed_batch != batch:
                skipped[str(batch)] = f"the graph has a fixed batch size of {fixed_batch}"
                continue
            feed = {"pixel_values": classifier_inputs(image_size, batch, seed)}
            for _ in range(warmup):
                session.run(None, feed)
            memory.stop_tracing()
            batches.append(latency_stats(time_calls(lambda feed=feed: session.run(None, feed), repeats, 0), batch, warmup))
    return {"runtime": runtime, "model_path": str(path), "load_seconds": load_seconds,
            "memory": memory.report(), "batches": batches, "skipped_batch_sizes": skipped}


def bench_classifier(path: str, onnx_dir: Optional[str], batch_sizes, repeats, warmup, seed, threads, skipped):
    runtime, image_size = bench_torch_classifier(path, batch_sizes, repeats, warmup, seed)
    runtimes = [runtime]
    package = Path(onnx_dir) if onnx_dir else Path(runtime["model_path"])
    onnx_files = (("onnxruntime_fp32", layout.CLASSIFIER_ONNX), ("onnxruntime_int8", layout.CLASSIFIER_ONNX_INT8))
    for name, relative in onnx_files:
        onnx_path = package / relative
        if not onnx_path.is_file():
            skipped[name] = f"{onnx_path} not found"
        elif onnxruntime_version() is None:
            skipped[name] = "onnxruntime is not installed"
        else:
            runtimes.append(
                bench_onnx_classifier(onnx_path, name, image_size, batch_sizes, repeats, warmup, seed, threads)
            )
    measures = "model forward on preprocessed pixel_values (float32, random, fixed seed); no decode/resize"
    return {"image_size": image_size, "measures": measures, "runtimes": runtimes}


# ----------------------------------------------------------------------------- generator


def bench_generator(path: str, steps_list, guidance: Optional[float], repeats: int, warmup: int, seed: int,
                    progress: bool):
    """Per-image latency at each step count, guidance off and at ``guidance`` (None: the pipeline's default)."""
    with MemoryMonitor() as memory:
        started = time.perf_counter()
        pipe, resolved = load_pipeline(path)
        load_seconds = time.perf_counter() - started
        pipe.set_progress_bar_config(disable=True)
        guidance = float(pipeline_defaults(pipe)["guidance_scale"] if guidance is None else guidance)
        settings = [(steps, g) for g in (1.0, guidance) for steps in steps_list]
        runs = []
        for steps, g in tqdm(settings, desc="generator", disable=not progress):

            def generate(steps=steps, g=g):
                return pipe(GENERATOR_BREED, num_inference_steps=steps, guidance_scale=g,
                            generator=torch.Generator().manual_seed(seed))

            for _ in range(warmup):
                generate()
            memory.stop_tracing()
            per_image = latency_stats(time_calls(generate, repeats, 0), 1, warmup)
            runs.append({"num_inference_steps": steps, "guidance_scale": float(g),
                         "classifier_free_guidance": g > 1.0, "per_image": per_image,
                         "per_step_ms": per_image["mean_ms"] / steps})
    return {"model_path": str(resolved), "resolution": int(pipe.transformer.config.sample_size),
            "load_seconds": load_seconds, "memory": memory.report(), "runs": runs}


# ----------------------------------------------------------------------------- entry point


def why_skipped(on_request: bool, what: str, default: Path) -> str:
    return "skipped on request" if on_request else f"no {what} given and no bundled {what} at {default}"


def run_benchmark(
    classifier: Optional[str] = None,
    generator: Optional[str] = None,
    onnx_dir: Optional[str] = None,
    output_dir: str = ".",
    repeats: int = 50,
    generator_repeats: int = 3,
    warmup: int = 2,
    threads: Optional[int] = None,
    seed: int = 0,
    batch_sizes: Sequence[int] = CLASSIFIER_BATCH_SIZES,
    steps: Sequence[int] = GENERATOR_STEPS,
    guidance: Optional[float] = None,
    skip_classifier: bool = False,
    skip_generator: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    """Benchmark what is available and write ``benchmarks/inference.json``; returns the document."""
    previous_threads = torch.get_num_threads()
    threads = threads or previous_threads
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    skipped: Dict[str, str] = {}
    try:
        # A model neither given nor bundled is reported as skipped.
        classifier_path = None if skip_classifier else resolve_model(classifier, DEFAULT_CLASSIFIER, required=False)
        generator_path = None if skip_generator else resolve_model(generator, DEFAULT_GENERATOR, required=False)
        if classifier_path is None and generator_path is None:
            raise FileNotFoundError("nothing to benchmark: no classifier or generator given, and no bundled models")
        classifier_doc = generator_doc = None
        if classifier_path:
            classifier_doc = bench_classifier(
                classifier_path, onnx_dir, batch_sizes, repeats, warmup, seed, threads, skipped
            )
        else:
            skipped["classifier"] = why_skipped(skip_classifier, "classifier", DEFAULT_CLASSIFIER)
        if generator_path:
            generator_doc = bench_generator(generator_path, steps, guidance, generator_repeats, warmup, seed, progress)
        else:
            skipped["generator"] = why_skipped(skip_generator, "generator", DEFAULT_GENERATOR)
    finally:
        torch.set_num_threads(previous_threads)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "inference_benchmark",
        "created_utc": utc_now(),
        "seed": seed,
        "environment": environment(threads),
        "classifier": classifier_doc,
        "generator": generator_doc,
        "skipped": skipped,
    }
    write_json(doc, Path(output_dir) / layout.INFERENCE_BENCHMARK, BENCHMARK_SCHEMA)
    return doc


__all__ = ["MemoryMonitor", "latency_stats", "run_benchmark", "time_calls"]
