"""Shared fixtures: made-up pet folders and tiny saved models, so no test needs ../shared."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_cats  # noqa: F401  (registers the Auto classes)
from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.classifier.labels import CAT_BREEDS, OXFORD_BREEDS

ROOT = Path(__file__).resolve().parents[1]
SHARED_PETS = ROOT.parent / "shared" / "data" / "oxford-iiit-pet"

# Code run in a child process before anything else: makes `import tiny_cats` fail, as on a
# machine where only the Hub repo is available.
BLOCK_TINY_CATS = textwrap.dedent(
    """
    import importlib.abc, sys
    class _BlockTinyCats(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tiny_cats" or name.startswith("tiny_cats."):
                raise ModuleNotFoundError("No module named 'tiny_cats' (blocked by the test)")
    sys.meta_path.insert(0, _BlockTinyCats())
    """
)


def breed_image(breed_index: int, seed: int, size: int = 48) -> Image.Image:
    """A made-up photo whose colour depends on the breed, with per-image noise."""
    rng = np.random.default_rng(seed)
    hue = np.array([(breed_index * 53) % 256, (breed_index * 97) % 256, (breed_index * 151) % 256], dtype=np.float32)
    pixels = hue + rng.normal(0, 20, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_pet_folder(root: Path, per_breed: int = 4, breeds=None, test_list_name: str = "test-pet.txt") -> Path:
    """An Oxford-IIIT Pet layout: images/BREED_N.jpg and annotations/<test list>.

    The second image of each breed is in the test list; the list also names one absent file.
    The first Bengal image is duplicated byte for byte as Bengal_99 (listed in the test split),
    like the real data's duplicate pairs.
    """
    breeds = breeds or list(CAT_BREEDS[:3]) + ["beagle", "pug"]
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    lines = []
    for b in breeds:
        index = OXFORD_BREEDS.index(b)
        for n in range(1, per_breed + 1):
            breed_image(index, seed=index * 100 + n).save(root / "images" / f"{b}_{n}.jpg", quality=90)
            if n == 2:
                lines.append(f"{b}_{n} {index + 1} {1 if b in CAT_BREEDS else 2} 1")
    if "Bengal" in breeds:
        (root / "images" / "Bengal_99.jpg").write_bytes((root / "images" / "Bengal_1.jpg").read_bytes())
        lines.append("Bengal_99 2 1 1")
    lines.append("Abyssinian_500 1 1 1")  # listed but absent
    (root / "annotations" / test_list_name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def pet_folder(tmp_path) -> Path:
    return make_pet_folder(tmp_path / "pets")


def tiny_classifier(backbone: str = "efficientnet_lite0") -> TinyCatsForImageClassification:
    torch.manual_seed(0)
    return TinyCatsForImageClassification(TinyCatsConfig(backbone=backbone, image_size=32)).eval()


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory) -> Path:
    """A saved (untrained) classifier with its processor and remote-code files."""
    path = tmp_path_factory.mktemp("classifier")
    tiny_classifier().save_pretrained(path)
    TinyCatsImageProcessor(size=32).save_pretrained(path)
    return path


def tiny_transformer():
    from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel

    torch.manual_seed(0)
    model = TinyDiTTransformer2DModel(sample_size=16, patch_size=4, hidden_size=32, num_layers=2, num_attention_heads=2)
    # adaLN-Zero starts with a zero output; give it random weights so outputs depend on inputs.
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.05)
    return model.eval()


def tiny_pipeline():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

    pipe = TinyDiTPipeline(transformer=tiny_transformer(), scheduler=FlowMatchEulerDiscreteScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def pipeline_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("generator")
    tiny_pipeline().save_pretrained(path)
    return path


def child_env(tmp_path: Path) -> dict:
    """Environment of a fresh child process: own HF caches, offline, no stray PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    return env


PYTHON = sys.executable
