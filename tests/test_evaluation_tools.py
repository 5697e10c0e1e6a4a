"""Tests for the evaluation tools: classifier/generator evaluation, benchmark, JSON schemas, CLI.

Fast by design: tiny saved models from conftest, made-up pet folders, and a cheap injected
feature extractor instead of InceptionV3 (one test runs the real one on 16 images).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_cats import layout
from tiny_cats.classifier.labels import CAT_BREEDS, LABELS, OTHER_ID
from tiny_cats.commands import build_parser, main
from tiny_cats.evaluation.benchmark import run_benchmark
from tiny_cats.evaluation.run_classifier_eval import CLASSIFIER_FILES, cats_only_accuracy, evaluate_classifier
from tiny_cats.evaluation.run_generator_eval import evaluate_generator
from tiny_cats.evaluation.schemas import (
    BENCHMARK_SCHEMA,
    CLASSIFIER_SCHEMA,
    GENERATOR_SCHEMA,
    SchemaValidationError,
    validate,
    write_json,
)

from .conftest import make_pet_folder, tiny_classifier


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


class CountingExtractor(torch.nn.Module):
    """Cheap stand-in for InceptionV3: per-channel mean/std/min/max of uint8 images; counts images."""

    num_features = 12

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.ndim == 4
        self.seen += images.shape[0]
        x = images.float().flatten(2) / 255.0
        return torch.cat([x.mean(2), x.std(2), x.amin(2), x.amax(2)], dim=1)


@pytest.fixture
def cat_folder(tmp_path) -> Path:
    """All 12 cat breeds and a dog: 24 cats (11 train, 13 test: Bengal_1's duplicate Bengal_99 is kept)."""
    return make_pet_folder(tmp_path / "cats", per_breed=2, breeds=list(CAT_BREEDS) + ["pug"])


# --------------------------------------------------------------------------- classifier


def test_classifier_eval_writes_valid_json_png_and_file_list(pet_folder, classifier_dir, tmp_path):
    doc = evaluate_classifier(str(classifier_dir), str(pet_folder), str(tmp_path), batch_size=2, progress=False)

    written = read_json(tmp_path / layout.CLASSIFIER_EVALUATION)
    validate(written, CLASSIFIER_SCHEMA)
    assert written == json.loads(json.dumps(doc))
    # Test list: *_2 of 5 breeds + Bengal_99 (a duplicate of Bengal_1); Abyssinian_500 is absent.
    lines = (tmp_path / CLASSIFIER_FILES).read_text().splitlines()[1:]
    files = sorted(line.split("\t")[0] for line in lines)
    expected = ["Abyssinian_2.jpg", "Bengal_2.jpg", "Bengal_99.jpg", "Birman_2.jpg", "beagle_2.jpg", "pug_2.jpg"]
    assert files == sorted(expected)
    assert written["num_images"] == 6 == written["metrics"]["num_samples"]
    assert written["files_list"] == CLASSIFIER_FILES
    assert written["confusion_matrix_png"] == layout.CLASSIFIER_CONFUSION_PNG
    umask = os.umask(0)
    os.umask(umask)
    # The usual permissions, not mkstemp's 0600: these files are uploaded and served.
    assert (tmp_path / layout.CLASSIFIER_EVALUATION).stat().st_mode & 0o777 == 0o666 & ~umask
    assert written["cats_only"]["num_images"] == 4
    assert sum(map(sum, written["metrics"]["confusion_matrix"])) == 6
    with Image.open(tmp_path / layout.CLASSIFIER_CONFUSION_PNG) as png:
        assert png.format == "PNG" and png.width > 13 * 20


def test_classifier_eval_limit_takes_a_seeded_subset(pet_folder, classifier_dir, tmp_path):
    first = evaluate_classifier(str(classifier_dir), str(pet_folder), str(tmp_path / "a"), limit=3, progress=False)
    again = evaluate_classifier(str(classifier_dir), str(pet_folder), str(tmp_path / "b"), limit=3, progress=False)
    assert first["num_images"] == 3 and first["limit"] == 3 and again["metrics"] == first["metrics"]
    listed = [(tmp_path / d / CLASSIFIER_FILES).read_text() for d in ("a", "b")]
    assert listed[0] == listed[1] and len(listed[0].splitlines()) == 4


def test_cats_only_accuracy_ignores_the_other_column():
    labels = np.array([0, 1, OTHER_ID])
    probs = np.zeros((3, len(LABELS)))
    probs[0, OTHER_ID], probs[0, 0] = 0.6, 0.4  # a cat called 'other': right 12-way, wrong 13-way
    probs[1, 1] = 1.0
    probs[2, 3] = 1.0  # dogs are not scored
    result = cats_only_accuracy(labels, probs)
    assert result == {"num_images": 2, "top1_12way": 1.0, "top1_13way": 0.5}
    assert cats_only_accuracy(np.array([OTHER_ID]), probs[:1])["top1_12way"] is None


# --------------------------------------------------------------------------- generator


def run_generator_eval(pipeline_dir, classifier_dir, data, out, extractor, samples=2, **kwargs):
    return evaluate_generator(
        str(pipeline_dir), str(classifier_dir), str(data), str(out), samples_per_breed=samples, steps=2,
        guidance=2.0, seed=0, batch_size=2, extractor=extractor, progress=False, **kwargs,
    )


def test_generator_eval_writes_json_grids_and_reuses_the_reference_cache(
    pipeline_dir, classifier_dir, cat_folder, tmp_path
):
    extractor = CountingExtractor()
    doc = run_generator_eval(pipeline_dir, classifier_dir, cat_folder, tmp_path, extractor)

    written = read_json(tmp_path / layout.GENERATOR_EVALUATION)
    validate(written, GENERATOR_SCHEMA)
    assert written["num_generated"] == 24 and written["num_real"] == 24  # every cat, both splits
    assert written["resolution"]["generated"] == written["resolution"]["real_compared_at"] == 16
    assert written["reference_cache"] == {"path": doc["reference_cache"]["path"], "reused": False, "num_files": 24}
    assert written["real_vs_real_floor"] is None  # 24 real cats leave none beside a first set of 24
    assert written["memorisation"] is None and written["grids"]["nearest_training_photos"] is None  # no training record
    assert set(written["breed_accuracy"]["per_breed"]) == set(CAT_BREEDS)
    assert 1.0 <= written["classifier_based_score"] <= len(LABELS)
    assert "inception_score" not in json.dumps(written)
    assert any("biased upward" in note for note in written["notes"])
    assert extractor.seen == 24 + 24
    for breed in CAT_BREEDS:
        with Image.open(tmp_path / layout.GENERATOR_BREED_GRIDS_DIR / f"{breed}.png") as grid:
            assert grid.size == (2 * 16, 16)
    with Image.open(tmp_path / layout.GENERATOR_GRID_PNG) as grid:
        assert grid.size == (2 * 16, 12 * 16)

    assert doc["reference_cache"]["path"] == "evaluation/cache/real_cats_16px.npz"
    assert doc["resolution"]["feature_extractor_input"] is None  # not Inception: no 299 px claim
    cache = tmp_path / doc["reference_cache"]["path"]
    stamp = cache.stat().st_mtime_ns
    extractor.seen = 0
    second = run_generator_eval(pipeline_dir, classifier_dir, cat_folder, tmp_path, extractor)
    assert second["reference_cache"]["reused"] is True
    assert extractor.seen == 24  # only the generated images went through the extractor
    assert cache.stat().st_mtime_ns == stamp
    assert second["fid"] == pytest.approx(doc["fid"])  # same seed, same samples

    extractor.seen = 0  # the same folder named another way (relative vs absolute) reuses the cache too
    relative = os.path.relpath(cat_folder)
    third = run_generator_eval(pipeline_dir, classifier_dir, relative, tmp_path, extractor)
    assert third["reference_cache"]["reused"] is True and extractor.seen == 24


def test_generator_eval_recomputes_a_stale_cache(pipeline_dir, classifier_dir, cat_folder, tmp_path):
    run_generator_eval(pipeline_dir, classifier_dir, cat_folder, tmp_path, CountingExtractor(), samples=1)
    (cat_folder / "images" / "Birman_2.jpg").unlink()  # the real cats changed
    extractor = CountingExtractor()
    doc = run_generator_eval(pipeline_dir, classifier_dir, cat_folder, tmp_path, extractor, samples=1)
    assert doc["reference_cache"]["reused"] is False and doc["num_real"] == 23
    assert extractor.seen == 23 + 12

    Path(tmp_path / doc["reference_cache"]["path"]).write_bytes(b"truncated")  # a broken cache is rebuilt
    again = run_generator_eval(pipeline_dir, classifier_dir, cat_folder, tmp_path, CountingExtractor(), samples=1)
    assert again["reference_cache"]["reused"] is False and again["fid"] == pytest.approx(doc["fid"])


def test_generator_eval_with_the_real_inception(pipeline_dir, classifier_dir, pet_folder, tmp_path):
    """The one real InceptionV3 run: 12 real cats + 12 generated images (one per breed)."""
    doc = run_generator_eval(pipeline_dir, classifier_dir, pet_folder, tmp_path / "out", None, samples=1,
                             cache_dir=str(tmp_path / "cache"))
    assert doc["feature_extractor"] == "InceptionFeatureExtractor(2048-d)"
    assert doc["num_real"] == 12 and doc["num_generated"] == 12
    assert doc["resolution"]["feature_extractor_input"] == 299
    # A cache outside the output folder is recorded with its absolute path.
    assert doc["reference_cache"]["path"] == str((tmp_path / "cache" / "real_cats_16px.npz").resolve())
    assert np.isfinite(doc["fid"]) and doc["fid"] >= 0
    assert (tmp_path / "cache" / "real_cats_16px.npz").is_file()


def test_generator_eval_needs_enough_real_cats(pipeline_dir, classifier_dir, tmp_path):
    few = make_pet_folder(tmp_path / "few", per_breed=3, breeds=["Abyssinian", "pug"])
    with pytest.raises(ValueError, match="need more than 3"):
        run_generator_eval(pipeline_dir, classifier_dir, few, tmp_path / "out", CountingExtractor(), samples=1)


def test_generator_eval_floor_and_memorisation_check(pipeline_dir, classifier_dir, cat_folder, tmp_path):
    """With a training record, the samples' nearest training photos are shown and their distance is
    compared with that of the real photos the generator did not train on (here: the test split)."""
    import shutil

    model = tmp_path / "generator"
    shutil.copytree(pipeline_dir, model)
    (model / layout.TRAINING_RESULTS).write_text(json.dumps({"config": {"train_splits": "train", "holdout_per_breed": 0}}))
    doc = run_generator_eval(model, classifier_dir, cat_folder, tmp_path / "out", CountingExtractor(), samples=1)

    floor = doc["real_vs_real_floor"]
    assert (floor["num_real_a"], floor["num_real_b"]) == (12, 12)  # the first set as large as the generated one
    assert floor["fid_real_a_vs_real_b"] >= 0 and floor["fid_generated_vs_real_b"] >= 0
    copies = doc["memorisation"]
    assert (copies["num_training_photos"], copies["num_held_back_photos"]) == (11, 13)
    assert copies["ratio"] == pytest.approx(copies["mean_nn_distance_generated"] / copies["mean_nn_distance_held_back_real"])
    with Image.open(tmp_path / "out" / layout.GENERATOR_NEIGHBOURS_PNG) as grid:
        assert grid.size == (5 * 16, 12 * 16)  # per breed: the sample and its 4 nearest training photos


def test_memorisation_sees_copies_and_uses_the_holdout(monkeypatch):
    from tiny_cats import data
    from tiny_cats.evaluation.run_generator_eval import memorisation

    rng = np.random.default_rng(0)
    files = [f"{breed}_{n}" for breed in CAT_BREEDS[:2] for n in range(1, 11)]
    real = rng.normal(size=(len(files), 8))
    splits = ["train"] * len(files)
    held = {"Abyssinian_3", "Bengal_7"}
    monkeypatch.setattr(data, "generator_holdout", lambda names, breeds, per_breed: held)
    summary, nearest = memorisation(real[[0, 5]], real, files, splits, {"splits": ("train",), "holdout_per_breed": 1})
    assert summary["num_training_photos"] == 18 and summary["num_held_back_photos"] == 2
    assert summary["mean_nn_distance_generated"] == 0.0 and summary["ratio"] == 0.0  # exact copies
    assert summary["mean_nn_distance_held_back_real"] > 0
    assert list(nearest[:, 0]) == [0, 5]
    assert not {files[i] for i in nearest.ravel()} & held  # held-back photos are never "training" neighbours


# --------------------------------------------------------------------------- benchmark


def export_onnx(path: Path, dynamic_batch: bool) -> Path:
    """A tiny classifier in ONNX with input ``pixel_values``, like the real export."""

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_classifier()

        def forward(self, pixel_values):
            return self.net(pixel_values=pixel_values).logits

    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes = {"pixel_values": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits().eval(), (torch.randn(1, 3, 32, 32),), str(path), input_names=["pixel_values"],
                          output_names=["logits"], dynamic_axes=dynamic_axes, dynamo=False)
    return path


def test_benchmark_writes_valid_json(classifier_dir, pipeline_dir, tmp_path):
    package = tmp_path / "package"
    export_onnx(package / layout.CLASSIFIER_ONNX, dynamic_batch=True)
    export_onnx(package / layout.CLASSIFIER_ONNX_INT8, dynamic_batch=False)  # fixed batch: batch 2 is skipped
    doc = run_benchmark(str(classifier_dir), str(pipeline_dir), str(package), str(tmp_path), repeats=2,
                        generator_repeats=1, warmup=1, threads=1, batch_sizes=(1, 2), steps=(1, 2), progress=False)

    written = read_json(tmp_path / layout.INFERENCE_BENCHMARK)
    validate(written, BENCHMARK_SCHEMA)
    assert written == json.loads(json.dumps(doc))
    runtimes = {r["runtime"]: r for r in written["classifier"]["runtimes"]}
    assert set(runtimes) == {"pytorch_eager", "onnxruntime_fp32", "onnxruntime_int8"}
    assert [b["batch_size"] for b in runtimes["onnxruntime_fp32"]["batches"]] == [1, 2]
    assert list(runtimes["onnxruntime_int8"]["skipped_batch_sizes"]) == ["2"]
    stats = runtimes["pytorch_eager"]["batches"][0]
    assert stats["repeats"] == 2 and stats["min_ms"] <= stats["p50_ms"] <= stats["p99_ms"]
    runs = written["generator"]["runs"]
    assert [(r["num_inference_steps"], r["classifier_free_guidance"]) for r in runs] == [
        (1, False), (2, False), (1, True), (2, True)]
    assert written["environment"]["threads"] == 1 and written["environment"]["torch"] == torch.__version__
    assert written["skipped"] == {}


def test_benchmark_reports_missing_onnx_files(classifier_dir, tmp_path):
    doc = run_benchmark(str(classifier_dir), None, None, str(tmp_path), repeats=1, warmup=0, threads=1,
                        batch_sizes=(1,), skip_generator=True, progress=False)
    assert doc["generator"] is None
    assert set(doc["skipped"]) == {"onnxruntime_fp32", "onnxruntime_int8", "generator"}


# --------------------------------------------------------------------------- schemas


@pytest.fixture(scope="module")
def classifier_doc(tmp_path_factory, classifier_dir) -> dict:
    root = tmp_path_factory.mktemp("schema")
    pets = make_pet_folder(root / "pets")
    return evaluate_classifier(str(classifier_dir), str(pets), str(root / "out"), progress=False)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: d.pop("model"), "missing required key 'model'"),
        (lambda d: d["metrics"].update(accuracy="high"), "expected number"),
        (lambda d: d["metrics"].update(accuracy=1.5), "above the maximum"),
        (lambda d: d["metrics"].update(ece=float("nan")), "not a finite number"),
        (lambda d: d.update(kind="generator_evaluation"), "is not one of"),
        (lambda d: d["metrics"]["per_class"]["Bengal"].update(support=True), "expected integer"),
        (lambda d: d["cats_only"].update(top1_12way=None), None),  # nullable: still valid
    ],
)
def test_schema_rejects_broken_documents(classifier_doc, tmp_path, breakage, message):
    doc = copy.deepcopy(classifier_doc)
    breakage(doc)
    target = tmp_path / "classifier.json"
    if message is None:
        write_json(doc, target, CLASSIFIER_SCHEMA)
        assert read_json(target) == doc
        return
    with pytest.raises(SchemaValidationError, match=message):
        validate(doc, CLASSIFIER_SCHEMA)
    with pytest.raises(SchemaValidationError):
        write_json(doc, target, CLASSIFIER_SCHEMA)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_schema_keywords_the_validator_does_not_check_are_refused():
    """The built-in validator checks a subset of JSON Schema; a schema outside it must not pass silently."""
    with pytest.raises(TypeError, match=r"\$\.name: 'pattern'"):
        validate({"name": "x"}, {"type": "object", "properties": {"name": {"type": "string", "pattern": "^x$"}}})
    for schema in (CLASSIFIER_SCHEMA, GENERATOR_SCHEMA, BENCHMARK_SCHEMA):
        with pytest.raises(SchemaValidationError):  # checkable: a wrong document fails, no TypeError
            validate([], schema)


# --------------------------------------------------------------------------- CLI


def test_cli_registers_the_commands_and_evaluates(pet_folder, classifier_dir, tmp_path, capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"evaluate-classifier", "evaluate-generator", "benchmark"} <= set(commands)
    code = main(["evaluate-classifier", "--classifier", str(classifier_dir), "--data", str(pet_folder),
                 "--output", str(tmp_path), "--limit", "2", "--quiet"])
    assert code == 0
    assert read_json(tmp_path / layout.CLASSIFIER_EVALUATION)["num_images"] == 2
    assert "accuracy" in capsys.readouterr().out
    code = main(["benchmark", "--classifier", str(classifier_dir), "--no-generator", "--output", str(tmp_path),
                 "--repeats", "1", "--warmup", "0", "--batch-sizes", "1", "--threads", "1", "--quiet"])
    assert code == 0
    validate(read_json(tmp_path / layout.INFERENCE_BENCHMARK), BENCHMARK_SCHEMA)


def test_cli_without_data_source_is_a_clear_error(classifier_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tiny_cats.data.default_data_dir", lambda: None)
    code = main(["evaluate-classifier", "--model", str(classifier_dir), "--output", str(tmp_path), "--quiet"])
    assert code == 2 and "no data source" in capsys.readouterr().err


def test_generator_eval_runs_the_onnx_denoiser(pipeline_dir, classifier_dir, cat_folder, tmp_path):
    """``onnx="int8"`` scores the exported, quantized denoiser with the same tool and settings."""
    from tiny_cats.onnx.export import export_generator

    package = tmp_path / "package"
    export_generator(pipeline_dir, package, quantize=True)
    doc = run_generator_eval(str(package), classifier_dir, cat_folder, tmp_path / "out", CountingExtractor(), onnx="int8")
    assert doc["model"].endswith("transformer_quantized.onnx (ONNX Runtime)")
    assert doc["num_generated"] == 24 and doc["fid"] >= 0
    with pytest.raises(FileNotFoundError, match="tiny-cats export"):
        run_generator_eval(str(tmp_path / "nothing"), classifier_dir, cat_folder, tmp_path / "out2", CountingExtractor(),
                           onnx="fp32")


def test_classifier_eval_scores_the_onnx_export(pet_folder, classifier_dir, tmp_path):
    """The fp32 export scores the same images like the PyTorch model it came from."""
    from tiny_cats.onnx.export import export_classifier

    package = tmp_path / "package"
    export_classifier(classifier_dir, package, quantize=False)
    out = tmp_path / "results"
    torch_doc = evaluate_classifier(str(classifier_dir), str(pet_folder), str(out), batch_size=2, progress=False)
    onnx_doc = evaluate_classifier(str(classifier_dir), str(pet_folder), str(out), batch_size=2,
                                   progress=False, onnx="fp32", onnx_dir=str(package))
    assert onnx_doc["model"].endswith("model.onnx (ONNX Runtime)")
    assert onnx_doc["metrics"]["confusion_matrix"] == torch_doc["metrics"]["confusion_matrix"]
    # written beside the PyTorch evaluation, never over it, with the photo-by-photo agreement
    assert read_json(out / layout.CLASSIFIER_EVALUATION) == torch_doc
    assert read_json(out / "evaluation/classifier_onnx_fp32.json") == onnx_doc
    assert onnx_doc["files_list"] == "evaluation/classifier_onnx_fp32_files.txt"
    assert (out / onnx_doc["files_list"]).is_file() and (out / onnx_doc["confusion_matrix_png"]).is_file()
    agreement = onnx_doc["agreement_with_pytorch"]
    assert agreement["num_images"] == torch_doc["num_images"] and agreement["different_files"] == []
    assert agreement["same_top1"] == 1.0
    # another set of photos (here: one line dropped) is no reference: no agreement rather than a wrong one
    files = out / CLASSIFIER_FILES
    files.write_text("".join(files.read_text().splitlines(keepends=True)[:-1]))
    again = evaluate_classifier(str(classifier_dir), str(pet_folder), str(out), batch_size=2, progress=False,
                                onnx="fp32", onnx_dir=str(package))
    assert again["agreement_with_pytorch"] is None


def test_agreement_counts_the_photos_whose_top1_differs(tmp_path):
    from tiny_cats.evaluation.run_classifier_eval import agreement_with, files_report

    labels = np.array([0, 1, 2])
    reference = np.eye(13)[[0, 1, 2]]
    (tmp_path / "ref.txt").write_text(files_report(["a.jpg", "b.jpg", "c.jpg"], labels, reference))
    ours = np.eye(13)[[0, 5, 2]]
    result = agreement_with(tmp_path / "ref.txt", ["a.jpg", "b.jpg", "c.jpg"], ours)
    assert result["num_different"] == 1 and result["different_files"] == ["b.jpg"]
    assert result["same_top1"] == pytest.approx(2 / 3)
    assert agreement_with(tmp_path / "missing.txt", ["a.jpg"], ours[:1]) is None
