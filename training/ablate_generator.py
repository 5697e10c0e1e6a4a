"""Equal-time ablation of the generator's design at 32 px: which TinyDiT (or a diffusers UNet) to train.

    python training/ablate_generator.py measure            # img/s of every variant, side by side
    python training/ablate_generator.py run A B C --threads 1   # train + score; run two lanes at once
    python training/ablate_generator.py report             # -> benchmarks/generator_ablation.json

Equal time, robust to this machine's speed swings (up to 4x between runs): ``measure`` times
every variant's training step in one process, interleaved, and each variant then gets
``budget_minutes x its measured img/s`` images of training. A slower design gets fewer steps,
exactly as it would in the same wall-clock on a quiet machine; the wall-clock each run really
took is recorded beside it.

Same data (every cat photo of the data folder, squashed to 32 px, horizontal flips only), same
seed, same batch. Scoring: 504 samples (42 per breed), 20 Euler steps (DDIM for the UNet),
guidance 2.0, against 1,000 real cats at 32 px (Inception pool3 features, both sets upsampled to
299 px), with the FID of 504 other real cats against the same 1,000 as the floor; the bundled
classifier judges whether each sample shows the asked breed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

from tiny_cats.classifier.labels import CAT_BREEDS  # noqa: E402
from tiny_cats.data import packed_cats_file  # noqa: E402
from tiny_cats.files import write_atomically, write_text  # noqa: E402
from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel  # noqa: E402

SIDE = 32
BATCH = 64
SEED = 0
SAMPLES_PER_BREED = 42
SAMPLE_STEPS = 20
GUIDANCE = 2.0
NUM_REAL = 1000
OUT = ROOT / "outputs" / "ablation"

DIT = dict(patch_size=4, hidden_size=192, num_layers=6, num_attention_heads=3, lr=3e-4)
# Cumulative from today's TinyDiT, plus the branches the issue asks about.
VARIANTS = {
    "A_baseline": {**DIT},
    "B_skip": {**DIT, "long_skip": True},
    "C_skip_conv": {**DIT, "long_skip": True, "final_conv": True},
    "D_skip_conv_p2": {**DIT, "long_skip": True, "final_conv": True, "patch_size": 2},
    "E_skip_conv_xpred": {**DIT, "long_skip": True, "final_conv": True, "prediction_type": "sample"},
    "F_skip_conv_xpred_lr1e-3": {**DIT, "long_skip": True, "final_conv": True, "prediction_type": "sample",
                                 "lr": 1e-3, "eval_all_emas": True},
    "G_unet_ddpm": {"unet": True, "lr": 1e-4},
    "H_baseline_lr1e-3": {**DIT, "lr": 1e-3},
}
MODEL_KEYS = ("patch_size", "hidden_size", "num_layers", "num_attention_heads", "long_skip", "final_conv",
              "prediction_type")


def build(variant: dict):
    torch.manual_seed(SEED)
    if variant.get("unet"):
        from diffusers import UNet2DModel

        # diffusers' train_unconditional.py block layout, four levels and narrower for 32 px on a CPU,
        # class-conditional through num_class_embeds (row 12 = the null label for guidance).
        return UNet2DModel(
            sample_size=SIDE, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(32, 64, 128, 128),
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            num_class_embeds=len(CAT_BREEDS) + 1,
        )
    kwargs = {k: variant[k] for k in MODEL_KEYS if k in variant}
    return TinyDiTTransformer2DModel(sample_size=SIDE, num_classes=len(CAT_BREEDS), **kwargs)


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")


class Trainer:
    """One variant's model, optimizer, EMAs and seeded batch stream."""

    def __init__(self, variant: dict, images: torch.Tensor, labels: torch.Tensor, total_steps: int):
        from diffusers.training_utils import EMAModel
        from transformers import get_scheduler

        self.variant, self.images, self.labels = variant, images, labels
        self.model = build(variant).train()
        self.unet = bool(variant.get("unet"))
        self.gen = torch.Generator().manual_seed(SEED)
        if self.unet:  # train_unconditional.py's defaults
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=variant["lr"], betas=(0.95, 0.999),
                                               weight_decay=1e-6, eps=1e-8)
            self.lr = get_scheduler("cosine", self.optimizer, num_warmup_steps=500, num_training_steps=total_steps)
            self.noise_scheduler = ddpm_scheduler()
        else:  # today's train_dit.py recipe
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=variant["lr"], weight_decay=0.0)
            self.lr = get_scheduler("constant_with_warmup", self.optimizer, num_warmup_steps=200)
        params = self.model.parameters
        self.emas = {
            "ema_warmup_power0.75": EMAModel(params(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75),
            "ema_0.999": EMAModel(params(), decay=0.999),
        }
        self.order, self.position = torch.empty(0, dtype=torch.long), 0

    def batch(self):
        if self.position + BATCH > len(self.order):
            self.order, self.position = torch.randperm(len(self.images), generator=self.gen), 0
        index = self.order[self.position : self.position + BATCH]
        self.position += BATCH
        x = self.images[index].float() / 127.5 - 1
        flip = torch.rand(BATCH, generator=self.gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        labels = self.labels[index].clone()
        labels[torch.rand(BATCH, generator=self.gen) < 0.1] = len(CAT_BREEDS)  # null label for guidance
        return x, labels

    def loss(self, x, labels):
        noise = torch.randn(x.shape, generator=self.gen)
        if self.unet:
            t = torch.randint(0, 1000, (BATCH,), generator=self.gen)
            noisy = self.noise_scheduler.add_noise(x, noise, t)
            return F.mse_loss(self.model(noisy, t, class_labels=labels).sample, noise)
        t = torch.sigmoid(torch.randn(BATCH, generator=self.gen))  # logit-normal(0, 1), as train_dit.py
        noisy = (1 - t.view(-1, 1, 1, 1)) * x + t.view(-1, 1, 1, 1) * noise
        velocity = self.model(noisy, t * 1000.0, labels).sample
        return F.mse_loss(velocity, noise - x)

    def step(self) -> float:
        loss = self.loss(*self.batch())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.lr.step()
        for ema in self.emas.values():
            ema.step(self.model.parameters())
        return float(loss.detach())

    def weights(self, which: str):
        model = copy.deepcopy(self.model).eval()
        if which != "raw":
            self.emas[which].copy_to(model.parameters())
        return model


@torch.no_grad()
def sample(model, unet: bool, seed: int = 1234) -> torch.Tensor:
    """SAMPLES_PER_BREED images per breed as uint8 (N, 3, SIDE, SIDE), classifier-free guidance."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(len(CAT_BREEDS)).repeat_interleave(SAMPLES_PER_BREED)
    out = []
    for chunk in classes.split(84):
        x = torch.randn((len(chunk), 3, SIDE, SIDE), generator=gen)
        labels = torch.cat([chunk, torch.full_like(chunk, len(CAT_BREEDS))])
        scheduler = DDIMScheduler.from_config(ddpm_scheduler().config) if unet else FlowMatchEulerDiscreteScheduler(shift=1.0)
        scheduler.set_timesteps(SAMPLE_STEPS)
        for t in scheduler.timesteps:
            both = torch.cat([x, x])
            if unet:
                pred = model(both, t, class_labels=labels).sample
            else:
                pred = model(both, t.expand(len(both)), labels).sample
            cond, uncond = pred.chunk(2)
            x = scheduler.step(uncond + GUIDANCE * (cond - uncond), t, x).prev_sample
        out.append(((x / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out)


def real_features(images: torch.Tensor):
    """Inception features of 1,000 reference cats and of 504 others (the real-vs-real floor), cached."""
    from tiny_cats.evaluation.inception import extract_features

    path = OUT / f"real_{SIDE}px_features.npz"
    if path.exists():
        cached = np.load(path)
        return cached["reference"], cached["floor"]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    feats = extract_features(images[order[: NUM_REAL + 12 * SAMPLES_PER_BREED]]).numpy()
    reference, floor = feats[:NUM_REAL], feats[NUM_REAL:]
    write_atomically(path, lambda tmp: np.savez(tmp, reference=reference, floor=floor), ".npz")
    return reference, floor


def score(generated: torch.Tensor, reference: np.ndarray, classifier) -> dict:
    from tiny_cats.evaluation.generative_metrics import compute_fid_kid, precision_recall
    from tiny_cats.evaluation.inception import extract_features

    feats = extract_features(generated).numpy()
    metrics = compute_fid_kid(reference, feats, kid_subsets=50)
    pr = precision_recall(reference, feats, k=3)
    net, processor = classifier
    with torch.inference_mode():
        probs = torch.cat([net(pixel_values=processor(list(b.permute(0, 2, 3, 1).numpy()), return_tensors="pt")
                               ["pixel_values"]).logits.softmax(-1) for b in generated.split(64)])
    asked = torch.arange(len(CAT_BREEDS)).repeat_interleave(SAMPLES_PER_BREED)
    top = probs.argmax(-1)
    return {"fid": round(metrics["fid"], 2), "kid": round(metrics["kid_mean"], 4),
            "precision": round(float(pr["precision"]), 3), "recall": round(float(pr["recall"]), 3),
            "judged_asked_breed": round(float((top == asked).float().mean()), 4),
            "judged_a_cat": round(float((top != len(CAT_BREEDS)).float().mean()), 4)}


def load_data(data: str):
    try:
        packed = np.load(packed_cats_file(data, SIDE, cache_dir=OUT))  # built once, renamed into place
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None
    return torch.from_numpy(packed["images"]), torch.from_numpy(packed["labels"])


def cmd_measure(args, images, labels):
    rates = {name: [] for name in args.variants}
    trainers = {name: Trainer(VARIANTS[name], images, labels, 10_000) for name in args.variants}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():  # interleaved: every variant sees the same machine
            for _ in range(2):
                trainer.step()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.step()
            rates[name].append(args.steps * BATCH / (time.perf_counter() - start))
    doc = {"threads": torch.get_num_threads(), "batch": BATCH, "side": SIDE,
           "img_per_s": {name: round(float(np.median(r)), 2) for name, r in rates.items()},
           "params": {name: sum(p.numel() for p in t.model.parameters()) for name, t in trainers.items()}}
    write_text(json.dumps(doc, indent=2), OUT / "throughput.json")
    print(json.dumps(doc, indent=2))


def cmd_run(args, images, labels):
    from tiny_cats import TinyCatsForImageClassification, TinyCatsImageProcessor
    from tiny_cats.defaults import DEFAULT_CLASSIFIER

    measured = OUT / "throughput.json"
    throughput = json.loads(measured.read_text()) if measured.exists() else {"img_per_s": {}}
    unmeasured = [name for name in args.variants if name not in throughput["img_per_s"]]
    if unmeasured:  # equal time needs the img/s measured side by side on this machine, in one process
        raise SystemExit(f"error: no img/s of {', '.join(unmeasured)} in {measured}: run `measure` first")
    reference, _ = real_features(images)
    classifier = (TinyCatsForImageClassification.from_pretrained(DEFAULT_CLASSIFIER).eval(),
                  TinyCatsImageProcessor.from_pretrained(DEFAULT_CLASSIFIER))
    for name in args.variants:
        variant = VARIANTS[name]
        steps = int(args.budget_minutes * 60 * throughput["img_per_s"][name] / BATCH)
        trainer = Trainer(variant, images, labels, steps)
        start, losses = time.time(), []
        for step in range(steps):
            losses.append(trainer.step())
            if step % 200 == 0:
                print(f"{name} step {step}/{steps} loss {np.mean(losses[-200:]):.4f}", flush=True)
        seconds = time.time() - start
        result = {"variant": name, "config": variant, "budget_minutes": args.budget_minutes, "steps": steps,
                  "images_seen": steps * BATCH,
                  "epochs": round(steps * BATCH / len(images), 1), "train_wall_seconds": round(seconds),
                  "threads": torch.get_num_threads(), "final_loss_mean_last_200": round(float(np.mean(losses[-200:])), 4),
                  "params": sum(p.numel() for p in trainer.model.parameters()), "scores": {}}
        which = ["ema_warmup_power0.75", "ema_0.999", "raw"] if variant.get("eval_all_emas") else ["ema_warmup_power0.75"]
        for w in which:
            generated = sample(trainer.weights(w), trainer.unet)
            result["scores"][w] = score(generated, reference, classifier)
            from PIL import Image

            from tiny_cats.generator.pipeline_tiny_dit import images_to_grid

            picks = generated.view(12, SAMPLES_PER_BREED, 3, SIDE, SIDE)[:, :4].reshape(-1, 3, SIDE, SIDE)
            tiles = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in picks]
            images_to_grid([t.resize((64, 64), Image.NEAREST) for t in tiles], columns=12).save(OUT / f"{name}_{w}.png")
            print(name, w, result["scores"][w], flush=True)
        write_text(json.dumps(result, indent=2), OUT / f"{name}.json")


def cmd_report(args, images, labels):
    from tiny_cats.evaluation.generative_metrics import compute_fid_kid

    path = ROOT / "benchmarks" / "generator_ablation.json"
    committed = json.loads(path.read_text()) if path.exists() else {"runs": []}
    # A fresh machine has no outputs/: rows (and the throughput) without a run here come from the committed table.
    found = {run["variant"]: run for run in committed["runs"]}
    found.update({name: json.loads(run.read_text()) for name in VARIANTS if (run := OUT / f"{name}.json").exists()})
    order = list(VARIANTS)
    runs = sorted(found.values(), key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))
    throughput = committed.get("throughput", {"img_per_s": {}, "params": {}})
    if (OUT / "throughput.json").exists():  # this machine's measurement replaces its variants' rates
        measured = json.loads((OUT / "throughput.json").read_text())
        throughput = {**measured, **{key: {**throughput.get(key, {}), **measured[key]} for key in ("img_per_s", "params")}}
    missing = [run["variant"] for run in runs if run["variant"] not in throughput["img_per_s"]]
    if missing:
        raise SystemExit(f"error: no img/s of {', '.join(missing)} in {OUT / 'throughput.json'}: run `measure` first")
    # Each run's own budget (runs from before it was recorded: steps x batch / img/s), not this command's flag.
    budgets = {run["variant"]: run.get("budget_minutes",
                                       round(run["steps"] * BATCH / throughput["img_per_s"][run["variant"]] / 60, 1))
               for run in runs}
    distinct = set(budgets.values())
    reference, floor = real_features(images)
    doc = {"what": "equal-time ablation of the generator at 32 px (training/ablate_generator.py)",
           "budget_minutes_per_variant": distinct.pop() if len(distinct) == 1 else budgets,
           "throughput": throughput,
           "data": {"cats": len(images), "side": SIDE, "augmentation": "horizontal flip"},
           "scoring": {"samples": 12 * SAMPLES_PER_BREED, "real_reference": NUM_REAL, "sampling_steps": SAMPLE_STEPS,
                       "guidance_scale": GUIDANCE, "sampler": "FlowMatchEuler (DiT), DDIM (UNet)"},
           "real_vs_real_floor_fid": round(compute_fid_kid(reference, floor, compute_kid=False)["fid"], 2),
           "runs": runs}
    write_text(json.dumps(doc, indent=2) + "\n", path)
    print(f"{'variant':28s} {'steps':>6s} {'img/s':>6s} {'FID':>7s} {'KID':>7s} {'breed':>6s} {'cat':>6s}  weights")
    for run in runs:
        for w, s in run["scores"].items():
            print(f"{run['variant']:28s} {run['steps']:6d} {throughput['img_per_s'][run['variant']]:6.1f} "
                  f"{s['fid']:7.2f} {s['kid']:7.4f} {s['judged_asked_breed']:6.3f} {s['judged_a_cat']:6.3f}  {w}")
    print(f"real-vs-real floor FID: {doc['real_vs_real_floor_fid']}; wrote {path.relative_to(ROOT)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("command", choices=["measure", "run", "report"])
    parser.add_argument("variants", nargs="*", help=f"default: all of {', '.join(VARIANTS)}")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "oxford-iiit-pet"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget-minutes", type=float, default=12.0, help="run: training time per variant (1 thread)")
    parser.add_argument("--rounds", type=int, default=2, help="measure: interleaved rounds")
    parser.add_argument("--steps", type=int, default=6, help="measure: timed steps per round")
    args = parser.parse_intermixed_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    args.variants = args.variants or list(VARIANTS)
    torch.set_num_threads(args.threads)
    images, labels = load_data(args.data)
    {"measure": cmd_measure, "run": cmd_run, "report": cmd_report}[args.command](args, images, labels)


if __name__ == "__main__":
    main()
