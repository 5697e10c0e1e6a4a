"""Training throughput: TinyDiT against diffusers' DiT, against the machine's matmul peak, against the input pipeline.

    python training/benchmark_throughput.py                       # 64 px, batch 32, all cores
    python training/benchmark_throughput.py --image_size 16 --hidden_size 32 --num_layers 1 --steps 2 --quick
    python training/benchmark_throughput.py --batch_size 64 --long_skip --final_conv --prediction_type sample --bf16 \
        --output benchmarks/training_throughput_release.json    # the release generator's design and precision

Writes ``benchmarks/training_throughput.json`` (``--quick``: only to an ``--output`` given). What is measured, so numbers stay comparable:

* a training step is forward + backward + AdamW step + zero_grad on random pixels, timesteps
  and labels (the rectified-flow loss of train_dit.py); warm-up steps are excluded and the
  median step time gives images/s;
* the baseline is diffusers' ``DiTTransformer2DModel`` in pixel space with the same width,
  depth, heads and patch size (in_channels 3, class-conditional through ``num_embeds_ada_norm``),
  timed in the same run, same threads, same batch;
* FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward +
  backward (matmuls, convolutions, attention; the optimizer's elementwise work is not counted),
  so ``share_of_peak`` = counted FLOP/s / peak;
* the peak is the best of several fp32 ``torch.mm`` of two square matrices (default side 4096)
  on the same threads: what this CPU's BLAS can reach, not a datasheet number; with ``--bf16``
  both models' steps run under bf16 autocast (as ``accelerate launch --mixed_precision bf16``
  does), the bf16 ``torch.mm`` peak is measured too, and ``share_of_peak`` stays against fp32;
* ``--long_skip``, ``--final_conv`` and ``--prediction_type`` shape TinyDiT only (the release
  design); the diffusers DiT baseline stays the plain one;
* the input pipeline is the training DataLoader (JPEG decode + resize + collate in worker
  processes) over real photos if ``--data`` exists, else over made-up 500x375 JPEGs; if its
  images/s is below the model's the run is input-bound (on a GPU machine run it there, with the
  GPU config's worker count).

Goals (reported, not asserted): TinyDiT no slower than diffusers' DiT, and at least 65% of the
matmul peak at 64 px.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from tiny_cats.classifier.labels import CAT_BREEDS, OXFORD_BREEDS
from tiny_cats.data import cats_only, default_data_dir, load_pets
from tiny_cats.evaluation.benchmark import environment
from tiny_cats.evaluation.common import utc_now, write_text
from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.training.loaders import make_train_loader

GOAL_SHARE_OF_PEAK = 0.65


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--patch_size", type=int, default=4)
    parser.add_argument("--hidden_size", type=int, default=192)
    parser.add_argument("--num_layers", type=int, default=6)
    parser.add_argument("--num_attention_heads", type=int, default=3)
    parser.add_argument("--long_skip", action="store_true", help="TinyDiT with U-ViT long skips")
    parser.add_argument("--final_conv", action="store_true", help="TinyDiT with a 3x3 conv after unpatchify")
    parser.add_argument("--prediction_type", default="velocity", help="TinyDiT's output: velocity or sample")
    parser.add_argument("--bf16", action="store_true", help="forward under bf16 autocast (weights and loss fp32)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's default (all cores)")
    parser.add_argument("--peak_size", type=int, default=4096, help="side of the square fp32 matmul for the peak")
    parser.add_argument("--data", default=None, help="Oxford-IIIT Pet folder for the input pipeline")
    parser.add_argument("--loader_workers", default="0,1,2", help="DataLoader worker counts to time")
    parser.add_argument("--loader_batches", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (inductor) before timing")
    parser.add_argument("--quick", action="store_true", help="fewer repeats everywhere (smoke test)")
    parser.add_argument("--output", help="default: benchmarks/training_throughput.json; with --quick, nothing is "
                        "written unless given (a smoke test must not replace the committed result)")
    return parser.parse_args(argv)


# --- the machine ---------------------------------------------------------------------------------


def matmul_peak_gflops(side: int, repeats: int, dtype=torch.float32) -> float:
    """Best GFLOP/s of ``torch.mm`` on two ``side`` x ``side`` matrices (2 side^3 FLOPs per call)."""
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    torch.mm(a, b)  # warm-up: threads, BLAS buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * side**3 / best / 1e9


# --- the models -----------------------------------------------------------------------------------


def build_models(args) -> Dict[str, torch.nn.Module]:
    """TinyDiT and diffusers' DiT with the same width, depth, heads and patch, both class-conditional."""
    from diffusers import DiTTransformer2DModel

    classes = len(CAT_BREEDS)
    torch.manual_seed(0)
    tiny = TinyDiTTransformer2DModel(
        sample_size=args.image_size, patch_size=args.patch_size, hidden_size=args.hidden_size,
        num_layers=args.num_layers, num_attention_heads=args.num_attention_heads, num_classes=classes,
        long_skip=args.long_skip, final_conv=args.final_conv, prediction_type=args.prediction_type,
    )
    reference = DiTTransformer2DModel(
        num_attention_heads=args.num_attention_heads, attention_head_dim=args.hidden_size // args.num_attention_heads,
        in_channels=3, out_channels=3, num_layers=args.num_layers, sample_size=args.image_size,
        patch_size=args.patch_size, num_embeds_ada_norm=classes + 1,
    )
    return {"tiny_dit": tiny.train(), "diffusers_dit": reference.train()}


def make_batch(args, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, generator=generator)
    timesteps = torch.rand(args.batch_size, generator=generator) * 1000
    labels = torch.randint(0, len(CAT_BREEDS), (args.batch_size,), generator=generator)
    return images, timesteps, labels


def loss_of(model, images, timesteps, labels, bf16: bool = False) -> torch.Tensor:
    """The training loss's cost (the x-prediction's conversion to velocity is elementwise and left out)."""
    noise = torch.randn_like(images)
    t = (timesteps / 1000).view(-1, 1, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(images * (1 - t) + noise * t, timesteps, class_labels=labels).sample
    return F.mse_loss(out.float(), noise - images)


def make_train_step(model, batch, bf16: bool) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss_of(model, *batch, bf16=bf16).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def count_step_flops(model, batch) -> int:
    """FLOPs of one forward + backward, as torch's FLOP counter sees them (in fp32: the count is the same)."""
    with FlopCounterMode(display=False) as counter:
        loss_of(model, *batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def time_steps(step: Callable[[], None], steps: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_model(model, args, peak_gflops: float) -> Dict:
    batch = make_batch(args)
    flops = count_step_flops(model, batch)
    if args.compile:
        model = torch.compile(model)
    seconds = time_steps(make_train_step(model, batch, args.bf16), args.steps, args.warmup)
    median = statistics.median(seconds)
    achieved = flops / median / 1e9
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_ms_median": round(median * 1000, 3),
        "step_ms_min": round(min(seconds) * 1000, 3),
        "images_per_s": round(args.batch_size / median, 2),
        "gflops_per_image_fwd_bwd": round(flops / args.batch_size / 1e9, 4),
        "achieved_gflops": round(achieved, 2),
        "share_of_peak": float(f"{achieved / peak_gflops:.4g}"),  # 4 significant digits: tiny test models stay > 0
    }


# --- the input pipeline ------------------------------------------------------------------------


def made_up_pets(root: Path, per_breed: int) -> Path:
    """Random 500x375 JPEGs named like Oxford-IIIT Pet photos (the real ones average about that size)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for breed in CAT_BREEDS:
        for n in range(1, per_breed + 1):
            pixels = rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"{breed}_{n}.jpg", quality=90)
    first = CAT_BREEDS[0]
    (root / "annotations" / "test-pet.txt").write_text(f"{first}_1 {OXFORD_BREEDS.index(first) + 1} 1 1\n")
    return root


def loader_images_per_s(dataset, args, workers: int, jpeg_draft: bool) -> float:
    """Images/s of the training DataLoader, after its first batch (worker start-up excluded)."""
    cfg = SimpleNamespace(train_batch_size=args.batch_size, dataloader_num_workers=workers, jpeg_draft=jpeg_draft,
                          streaming_shards=0, seed=0)
    batches = iter(make_train_loader(dataset, cfg, args.image_size))
    next(batches)
    start, images = time.perf_counter(), 0
    for _, batch in zip(range(args.loader_batches), batches):
        images += batch["pixel_values"].shape[0]
    return round(images / (time.perf_counter() - start), 1)


def bench_input_pipeline(args) -> Dict:
    data = args.data or default_data_dir()
    with tempfile.TemporaryDirectory() as scratch:
        needed = args.batch_size * (args.loader_batches + 1)
        per_breed = min(needed // len(CAT_BREEDS) + 2, 50)
        source = data if data and Path(data).is_dir() else str(made_up_pets(Path(scratch) / "pets", per_breed))
        dataset = cats_only(load_pets(source)["train"])
        dataset = dataset.select([i % len(dataset) for i in range(needed)])
        runs = [{"workers": w, "jpeg_draft": draft, "images_per_s": loader_images_per_s(dataset, args, w, draft)}
                for w in map(int, args.loader_workers.split(",")) for draft in (False, True)]
    return {"source": "oxford-iiit-pet" if source == data else "made-up 500x375 JPEGs", "runs": runs}


# --- report --------------------------------------------------------------------------------------


def main(argv=None) -> Dict:
    args = parse_args(argv)
    if args.quick:
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
        args.loader_batches = min(args.loader_batches, 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 10
    peak = matmul_peak_gflops(args.peak_size, repeats)
    peak_bf16 = matmul_peak_gflops(args.peak_size, repeats, torch.bfloat16) if args.bf16 else None
    models = {name: bench_model(model, args, peak) for name, model in build_models(args).items()}
    pipeline = bench_input_pipeline(args)
    tiny, reference = models["tiny_dit"], models["diffusers_dit"]
    best_loader = max(run["images_per_s"] for run in pipeline["runs"])
    report = {
        "created": utc_now(),
        "environment": environment(torch.get_num_threads()),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "matmul_peak_gflops_fp32": round(peak, 2),
        **({"matmul_peak_gflops_bf16": round(peak_bf16, 2)} if args.bf16 else {}),
        "models": models,
        "tiny_dit_speedup_over_diffusers": round(tiny["images_per_s"] / reference["images_per_s"], 3),
        "goals": {
            "no_slower_than_diffusers": tiny["images_per_s"] >= reference["images_per_s"],
            f"share_of_peak_at_least_{GOAL_SHARE_OF_PEAK}": tiny["share_of_peak"] >= GOAL_SHARE_OF_PEAK,
        },
        "input_pipeline": {**pipeline, "best_images_per_s": best_loader,
                           "input_bound": best_loader < tiny["images_per_s"]},
    }
    output = args.output or (None if args.quick else "benchmarks/training_throughput.json")
    if output:
        write_text(json.dumps(report, indent=2) + "\n", output)
    print(json.dumps({k: report[k] for k in ("matmul_peak_gflops_fp32", "models", "goals")}, indent=2))
    return report


if __name__ == "__main__":
    main()
