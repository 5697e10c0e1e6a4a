"""Generate cats of two breeds with the bundled TinyDiT pipeline and save them as one grid.

    python examples/generation_example.py [--model DIR_OR_REPO] [--output cats.png]
"""

import argparse

import torch

from tiny_cats.defaults import DEFAULT_GENERATOR
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline, images_to_grid

parser = argparse.ArgumentParser()
parser.add_argument("--model", default=str(DEFAULT_GENERATOR))
parser.add_argument("--output", default="cats.png")
args = parser.parse_args()

pipe = TinyDiTPipeline.from_pretrained(args.model)
images = pipe(["Siamese", "maine coon"], num_images_per_breed=2, num_inference_steps=8,
              guidance_scale=6.0, generator=torch.manual_seed(0)).images
images_to_grid(images, columns=4).save(args.output)
print(f"saved {len(images)} images of {images[0].size[0]}x{images[0].size[1]} pixels to {args.output}")
