"""Make the bundled sample images of the Classify page with the project's own generator (no photos).

    .venv/bin/python frontend/scripts/make_samples.py

Writes frontend/public/samples/<breed>.png (64x64, TinyDiTPipeline at its defaults: 8 Euler steps, guidance 6; fixed seeds)
and frontend/public/samples/samples.json listing them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tiny_cats.defaults import DEFAULT_GENERATOR, pipeline_defaults, resolve_model
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

OUT = Path(__file__).resolve().parents[1] / "public" / "samples"
BREEDS = {"Siamese": 1, "Bombay": 2, "Persian": 3, "Abyssinian": 4}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pipe = TinyDiTPipeline.from_pretrained(resolve_model(None, DEFAULT_GENERATOR))
    pipe.set_progress_bar_config(disable=True)
    defaults = pipeline_defaults(pipe)
    made_with = f"{defaults['num_inference_steps']} steps, guidance {float(defaults['guidance_scale'])}"
    listing = []
    for breed, seed in BREEDS.items():
        (image,) = pipe(breed, generator=torch.manual_seed(seed)).images
        name = f"{breed.lower()}.png"
        image.save(OUT / name, optimize=True)
        listing.append({"file": name, "breed": breed, "made_by": f"TinyDiTPipeline, {made_with}, torch seed {seed}"})
    (OUT / "samples.json").write_text(json.dumps(listing, indent=2) + "\n")
    print(f"wrote {len(listing)} samples to {OUT}")


if __name__ == "__main__":
    main()
