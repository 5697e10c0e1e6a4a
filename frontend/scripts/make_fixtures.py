"""Write the small JSON fixtures the vitest parity tests compare the TypeScript code against.

Run from the repository root with the project's venv:

    .venv/bin/python frontend/scripts/make_fixtures.py

Writes frontend/tests/fixtures/{scheduler,preprocessing,labels}.json. Everything comes from the
Python code the browser app mirrors: diffusers' FlowMatchEulerDiscreteScheduler, TinyDiTPipeline
(guidance and the denoising loop, with a tiny made-up denoiser and fixed noise), the bundled
classifier's TinyCatsImageProcessor and tiny_cats.classifier.labels.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "frontend" / "tests" / "fixtures"


def rounded(values, digits=9):
    return [float(f"{float(v):.{digits}g}") for v in np.asarray(values, dtype=np.float64).reshape(-1)]


# ------------------------------------------------------------------------------------- scheduler

SCHEDULE_CASES = [
    ({"shift": 1.0}, [1, 2, 8, 25, 50]),
    ({"shift": 3.0}, [1, 4, 8, 25]),
    ({"shift": 2.0, "shift_terminal": 0.05}, [8]),
    ({"shift": 1.5, "invert_sigmas": True}, [5]),
]


def base_scheduler_config():
    from tiny_cats.defaults import DEFAULT_GENERATOR, resolve_model
    from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

    pipe = TinyDiTPipeline.from_pretrained(resolve_model(None, DEFAULT_GENERATOR))
    return {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}


class FakeDenoiser:
    """Velocity = -0.9 * sample + coef[label] * (t / 1000): simple float32 ops the test repeats exactly."""

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, size, channels, num_classes, coefs):
        from diffusers.configuration_utils import FrozenDict

        self.config = FrozenDict(sample_size=size, in_channels=channels, num_classes=num_classes)
        self.coefs = torch.tensor(coefs, dtype=torch.float32)

    @property
    def null_class_id(self):
        return self.config.num_classes

    def __call__(self, sample, timestep, class_labels, return_dict=True):
        from diffusers.models.modeling_outputs import Transformer2DModelOutput

        t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1, 1, 1, 1)
        coef = self.coefs[torch.as_tensor(class_labels).long()].reshape(-1, 1, 1, 1)
        velocity = -sample * 0.9 + coef * (t / 1000)
        return Transformer2DModelOutput(sample=velocity)


def pipeline_case(config, steps, guidance, class_ids):
    import diffusers

    import tiny_cats.generator.pipeline_tiny_dit as ptd

    size, channels, num_classes = 3, 3, 4
    coefs = [0.5, -1.0, 2.0, 0.25, -0.75]  # one per class plus the null label (id 4)
    count = len(class_ids) * channels * size * size
    noise = (np.sin(np.arange(count) * 1.3) * 1.5).astype(np.float32).reshape(len(class_ids), channels, size, size)
    denoiser = FakeDenoiser(size, channels, num_classes, coefs)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config)
    id2label = {i: name for i, name in enumerate(["Abyssinian", "Bengal", "Birman", "Bombay"])}
    pipe = ptd.TinyDiTPipeline(transformer=denoiser, scheduler=scheduler, id2label=id2label)
    pipe.set_progress_bar_config(disable=True)
    original = ptd.randn_tensor
    ptd.randn_tensor = lambda shape, **kwargs: torch.from_numpy(noise.copy())
    try:
        images = pipe(list(class_ids), num_inference_steps=steps, guidance_scale=guidance, output_type="pt").images
    finally:
        ptd.randn_tensor = original
    return {
        "steps": steps, "guidance_scale": guidance, "class_ids": list(class_ids), "null_class_id": num_classes,
        "coefs": coefs, "size": size, "channels": channels, "noise": rounded(noise),
        "images": rounded(images),  # (N, C, H, W): clamp(sample / 2 + 0.5, 0, 1)
    }


def scheduler_fixture():
    import diffusers

    base = base_scheduler_config()
    schedules = []
    for overrides, step_counts in SCHEDULE_CASES:
        config = {**base, **overrides}
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config)
        for steps in step_counts:
            scheduler.set_timesteps(steps)
            schedules.append({"config": overrides, "steps": steps, "timesteps": rounded(scheduler.timesteps),
                              "sigmas": rounded(scheduler.sigmas)})
    # One Euler step and one guidance mix on made-up tensors.
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config({**base, "shift": 3.0})
    scheduler.set_timesteps(6)
    sample = torch.from_numpy((np.cos(np.arange(12) * 0.7)).astype(np.float32))
    cond = torch.from_numpy((np.sin(np.arange(12) * 0.3) * 2).astype(np.float32))
    uncond = torch.from_numpy((np.cos(np.arange(12) * 0.9)).astype(np.float32))
    velocity = uncond + 4.5 * (cond - uncond)
    steps = []
    current = sample.clone()
    for t in scheduler.timesteps[:3]:
        current = scheduler.step(velocity, t, current).prev_sample
        steps.append(rounded(current))
    return {
        "base_config": base,
        "schedules": schedules,
        "step": {"config": {"shift": 3.0}, "num_inference_steps": 6, "sample": rounded(sample), "cond": rounded(cond),
                 "uncond": rounded(uncond), "guidance_scale": 4.5, "velocity": rounded(velocity), "after_steps": steps},
        "pipeline": [
            pipeline_case(base, 4, 3.0, [1, 3]),
            pipeline_case({**base, "shift": 3.0}, 5, 1.0, [2]),
            pipeline_case({**base, "shift": 2.0}, 3, 5.5, [0]),
        ],
        "percentile": {"values": [5.0, 1.0, 4.0, 2.5, 9.0, 3.0, 7.25],
                       "p50": float(np.percentile([5.0, 1.0, 4.0, 2.5, 9.0, 3.0, 7.25], 50)),
                       "p95": float(np.percentile([5.0, 1.0, 4.0, 2.5, 9.0, 3.0, 7.25], 95)),
                       "p99": float(np.percentile([5.0, 1.0, 4.0, 2.5, 9.0, 3.0, 7.25], 99))},
    }


# --------------------------------------------------------------------------------- preprocessing


def pattern_image(width, height, alpha=False):
    """The made-up image the test rebuilds: a deterministic integer pattern (values 0..255)."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [((x * 37 + y * 91 + c * 53 + x * y * 7) % 256) for c in range(3)]
    if alpha:
        channels.append((x * 29 + y * 13) % 256)
    return np.stack(channels, axis=-1).astype(np.uint8)


def preprocessing_fixture():
    from PIL import Image

    from tiny_cats import TinyCatsImageProcessor
    from tiny_cats.defaults import DEFAULT_CLASSIFIER, resolve_model

    real = TinyCatsImageProcessor.from_pretrained(resolve_model(None, DEFAULT_CLASSIFIER))
    small_cases = []
    for index, (width, height, size) in enumerate([(19, 13, 8), (5, 7, 6), (8, 3, 8), (40, 40, 6)]):
        processor = TinyCatsImageProcessor(size=size, image_mean=real.image_mean, image_std=real.image_std)
        pixels = processor(pattern_image(width, height), return_tensors="np")["pixel_values"][0]
        resized = np.asarray(Image.fromarray(pattern_image(width, height)).resize((size, size), Image.BICUBIC))
        case = {"width": width, "height": height, "size": size, "resized_uint8": resized.reshape(-1).tolist()}
        if index == 0:  # normalised values once; the other cases check the resize only
            case["pixel_values"] = rounded(pixels)
        small_cases.append(case)
    # The real processor config on a larger made-up image: checksums plus sampled values.
    width, height = 300, 200
    pixels = real(pattern_image(width, height), return_tensors="np")["pixel_values"][0]
    side = (real.size["width"], real.size["height"])  # the processor's size is {"height", "width"}
    resized = np.asarray(Image.fromarray(pattern_image(width, height)).resize(side, Image.BICUBIC))
    rng = np.random.default_rng(0)
    positions = sorted(int(i) for i in rng.choice(pixels.size, 64, replace=False))
    # A portrait photo size, for which Pillow 13 runs the vertical pass first.
    portrait = np.asarray(Image.fromarray(pattern_image(240, 420)).resize(side, Image.BICUBIC))
    # RGBA: transparency composited on white, then the same resize.
    rgba = real(Image.fromarray(pattern_image(23, 17, alpha=True), mode="RGBA"), return_tensors="np")["pixel_values"][0]
    return {
        "processor": {"size": real.size["height"], "image_mean": list(real.image_mean), "image_std": list(real.image_std)},
        "small": small_cases,
        "real": {"width": width, "height": height, "resized_sha256": hashlib.sha256(resized.tobytes()).hexdigest(),
                 "sum": float(pixels.astype(np.float64).sum()), "positions": positions,
                 "values": rounded(pixels.reshape(-1)[positions])},
        "portrait": {"width": 240, "height": 420, "resized_sha256": hashlib.sha256(portrait.tobytes()).hexdigest()},
        "rgba": {"width": 23, "height": 17, "sum": float(rgba.astype(np.float64).sum()),
                 "first": rounded(rgba.reshape(-1)[:24])},
    }


# ----------------------------------------------------------------------------------------- labels


def labels_fixture():
    from tiny_cats.classifier import labels
    from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

    spellings = ["maine coon", "Maine-Coon", "MAINE_COON", " british shorthair ", "russian-blue", "OTHER", "Sphynx"]
    pipe_ids = {}
    import diffusers

    pipe = TinyDiTPipeline(transformer=FakeDenoiser(3, 3, 12, [0.0] * 13),
                           scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), id2label=dict(enumerate(labels.CAT_BREEDS)))
    for breed in labels.CAT_BREEDS:
        pipe_ids[breed] = pipe.get_label_ids(breed)[0]
    return {
        "labels": list(labels.LABELS),
        "cat_breeds": list(labels.CAT_BREEDS),
        "other_label": labels.OTHER_LABEL,
        "dog_breeds": list(labels.DOG_BREEDS),
        "label_to_id": {name: labels.label_to_id(name) for name in spellings},
        "generator_ids": pipe_ids,
        "softmax": {"logits": [2.0, -1.0, 0.5, 3.25, 0.0], "probabilities": rounded(torch.softmax(
            torch.tensor([2.0, -1.0, 0.5, 3.25, 0.0], dtype=torch.float64), 0))},
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in [("scheduler", scheduler_fixture), ("preprocessing", preprocessing_fixture), ("labels", labels_fixture)]:
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(build(), separators=(",", ":")) + "\n")
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
