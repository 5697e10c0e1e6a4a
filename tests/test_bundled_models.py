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


def source_files(model: str) -> dict:
    """tiny_cats/<model>/*.py minus __init__.py: exactly the code that travels with that model."""
    return {p.name: p for p in (PACKAGE_DIR / model).glob("*.py") if p.name != "__init__.py"}


def expected_copies(model: str) -> dict:
    """Path in a saved model folder -> the source file it must be a byte-identical copy of."""
    sources = source_files(model)
    if model == "generator":  # diffusers loads the transformer's code from its own subfolder
        return {**sources, "transformer/modeling_tiny_dit.py": sources["modeling_tiny_dit.py"]}
    return sources


def code_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def assert_folder_matches(folder: Path, model: str) -> None:
    expected, copies = expected_copies(model), code_files(folder)
    assert sorted(copies) == sorted(expected), f"{folder}: code files {sorted(copies)} != {sorted(expected)}; {REFRESH}"
    stale = [name for name, path in copies.items() if not filecmp.cmp(path, expected[name], shallow=False)]
    assert not stale, f"stale remote-code copies {stale} in {folder}; {REFRESH}"


def test_model_code_folders_hold_exactly_the_travelling_files():
    assert sorted(source_files("classifier")) == ["configuration_tiny_cats.py", "image_processing_tiny_cats.py",
                                                  "labels.py", "modeling_tiny_cats.py", "onnx_config_tiny_cats.py"]
    assert sorted(source_files("generator")) == ["modeling_tiny_dit.py", "pipeline_tiny_dit.py"]


@pytest.mark.parametrize("folder,model", [(DEFAULT_CLASSIFIER, "classifier"), (DEFAULT_GENERATOR, "generator")],
                         ids=["classifier", "generator"])
def test_bundled_remote_code_is_todays_code_folder_to_folder(folder, model):
    """The code copied beside the weights is what Hub users run: the same files as tiny_cats/<model>/, byte for byte."""
    assert_folder_matches(folder, model)


def test_save_pretrained_copies_exactly_the_model_folders(classifier_dir, pipeline_dir):
    """A fresh save_pretrained writes the same set of code files as the bundled folders hold."""
    assert_folder_matches(classifier_dir, "classifier")
    assert_folder_matches(pipeline_dir, "generator")


def test_generator_default_breeds_are_the_classifiers_cat_breeds():
    """The pipeline carries its own default classes (it does not import the classifier's labels)."""
    from tiny_cats.classifier.labels import CAT_BREEDS
    from tiny_cats.generator.pipeline_tiny_dit import DEFAULT_BREEDS

    assert DEFAULT_BREEDS == CAT_BREEDS


def test_bundled_weights_are_small():
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*.safetensors"))
    assert 0 < total < 60 * 2**20


def test_bundled_models_load():
    from tiny_cats import TinyCatsForImageClassification
    from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

    classifier = TinyCatsForImageClassification.from_pretrained(DEFAULT_CLASSIFIER)
    assert classifier.config.num_labels == 13 and classifier.config.backbone == "efficientnet_lite0"
    pipe = TinyDiTPipeline.from_pretrained(DEFAULT_GENERATOR)
    assert len(pipe.labels) == 12 and pipe.transformer.config.sample_size >= 32
