"""Classify a photo with the bundled tiny-cats classifier, through transformers' pipeline.

    python examples/classification_example.py [IMAGE] [--model DIR_OR_REPO]
"""

import argparse

from PIL import Image
from transformers import pipeline

import tiny_cats  # noqa: F401  (registers TinyCats with the Auto classes)
from tiny_cats.defaults import DEFAULT_CLASSIFIER

parser = argparse.ArgumentParser()
parser.add_argument("image", nargs="?", help="a photo; default: a made-up grey square")
parser.add_argument("--model", default=str(DEFAULT_CLASSIFIER))
args = parser.parse_args()

classify = pipeline("image-classification", model=args.model)
image = Image.open(args.image) if args.image else Image.new("RGB", (256, 256), (128, 128, 128))
for prediction in classify(image, top_k=3):
    print(f"{prediction['label']:<18} {prediction['score']:.3f}")
