"""The trained models that ship inside the package."""

import filecmp
from pathlib import Path

import pytest

import tiny_cats
from tiny_cats.defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, PRETRAINED_DIR

PACKAGE_DIR = Path(tiny_cats.__file__).parent
REFRESH = (
    "refresh with: python -c \"from tiny_cats import TinyCatsForImageClassification as M; "
    "M.from_pretrained('tiny_cats/pretrained/classifier').save_pretrained('tiny_cats/pretrained/classifier')\" "
    "(and TinyDiTPipeline likewise for the generator)"
)


def code_files(folder: Path):
    return sorted(p for p in folder.rglob("*.py"))


@pytest.mark.parametrize("folder", [DEFAULT_CLASSIFIER, DEFAULT_GENERATOR], ids=["classifier", "generator"])
def test_remote_code_copies_match_the_package(folder):
    """The code copied beside the weights is what Hub users run: it must be today's code."""
    copies = code_files(folder)
    assert copies, f"no code files in {folder}"
    stale = [str(p.relative_to(folder)) for p in copies if not filecmp.cmp(p, PACKAGE_DIR / p.name, shallow=False)]
    assert not stale, f"stale remote-code copies {stale}; {REFRESH}"


def test_bundled_weights_are_small():
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*.safetensors"))
    assert 0 < total < 60 * 2**20


def test_bundled_models_load():
    from tiny_cats import TinyCatsForImageClassification
    from tiny_cats.pipeline_tiny_dit import TinyDiTPipeline

    classifier = TinyCatsForImageClassification.from_pretrained(DEFAULT_CLASSIFIER)
    assert classifier.config.num_labels == 13 and classifier.config.backbone == "efficientnet_lite0"
    pipe = TinyDiTPipeline.from_pretrained(DEFAULT_GENERATOR)
    assert len(pipe.labels) == 12 and pipe.transformer.config.sample_size >= 32
