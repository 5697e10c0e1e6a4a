"""Model package, model card and upload, round-tripped through the loopback Hub server (tests/hub_server.py)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import traceback

import pytest
import requests
import yaml
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image

from tiny_cats import layout
from tiny_cats.classifier.labels import CAT_BREEDS, LABELS
from tiny_cats.commands import build_parser, main
from tiny_cats.evaluation.schemas import CLASSIFIER_SCHEMA, GENERATOR_SCHEMA, validate
from tiny_cats.hub_package import build_package, package_files
from tiny_cats.model_card import DATASET_ID, NOT_MEASURED, extract_snippets
from tiny_cats.publish import PublishError, publish, with_retries

from .conftest import BLOCK_TINY_CATS, PYTHON, ROOT, child_env
from .hub_server import local_hub  # noqa: F401  (pytest fixture)

REPO = "tester/tiny-cats-model"
TOKEN = "hf_test_token"
FAST = dict(base_delay=0.01)  # retries without waiting seconds


# ----------------------------------------------------------------------------- made-up inputs


def classifier_doc() -> dict:
    per_class = {name: {"precision": 0.5 + i / 100, "recall": 0.7 - i / 100, "f1": 0.6 + i / 200, "support": 10 + i}
                 for i, name in enumerate(LABELS)}
    doc = {"schema_version": 1, "kind": "classifier_evaluation", "created_utc": "2026-01-02T03:04:05+00:00",
           "model": "classifier", "data_source": "made-up pets", "split": "test", "num_images": 247, "limit": None,
           "files_list": "evaluation/classifier_files.txt",
           "metrics": {"num_samples": 247, "label_names": list(LABELS), "accuracy": 0.8765432,
                       "macro_precision": 0.81234, "macro_recall": 0.79123, "macro_f1": 0.80111, "per_class": per_class,
                       "confusion_matrix": [[1] * 13 for _ in range(13)], "cat_vs_not_cat_accuracy": 0.97531,
                       "most_confused_pairs": [{"pair": ["Birman", "Ragdoll"], "count": 9, "a_as_b": 5, "b_as_a": 4},
                                               {"pair": ["Bombay", "other"], "count": 2, "a_as_b": 0, "b_as_a": 2}],
                       "ece": 0.04213, "ece_bins": 15},
           "cats_only": {"num_images": 120, "top1_12way": 0.83333, "top1_13way": 0.81666},
           "confusion_matrix_png": layout.CLASSIFIER_CONFUSION_PNG, "batch_size": 32, "seconds": 12.5}
    validate(doc, CLASSIFIER_SCHEMA)
    return doc


def generator_doc() -> dict:
    per_breed = {name: round(0.2 + i / 20, 4) for i, name in enumerate(CAT_BREEDS)}
    doc = {"schema_version": 1, "kind": "generator_evaluation", "created_utc": "2026-01-02T03:04:05+00:00",
           "model": "generator", "classifier": "classifier", "data_source": "made-up pets",
           "settings": {"samples_per_breed": 4, "num_inference_steps": 25, "guidance_scale": 4.0, "seed": 0,
                        "batch_size": 8},
           "resolution": {"generated": 16, "real_compared_at": 16, "real_resize": "bicubic",
                          "feature_extractor_input": 299},
           "feature_extractor": "Inception-v3 pool3", "num_generated": 48, "num_real": 96, "fid": 123.456,
           "kid_mean": 0.0345, "kid_std": 0.0021, "kid_subsets": 10, "kid_subset_size": 40, "precision": 0.4321,
           "recall": 0.2345, "precision_recall_k": 3,
           "breed_accuracy": {"overall": 0.3125, "judged_not_a_cat": 0.0625, "per_breed": per_breed},
           "classifier_based_score": 2.5,
           "real_vs_real_floor": {"num_real_a": 48, "num_real_b": 48, "fid_real_a_vs_real_b": 31.25,
                                  "fid_generated_vs_real_b": 125.5},
           "memorisation": {"feature_space": "Inception pool3 (L2)", "num_training_photos": 80, "num_held_back_photos": 16,
                            "held_back": "holdout", "mean_nn_distance_generated": 18.0,
                            "mean_nn_distance_held_back_real": 16.0, "ratio": 1.125},
           "reference_cache": {"path": "evaluation/cache", "reused": False, "num_files": 96},
           "grids": {"all_breeds": layout.GENERATOR_GRID_PNG, "per_breed": {}},
           "seconds": {"generation": 1.0, "features": 2.0, "total": 3.0}, "notes": ["made up for a test"]}
    validate(doc, GENERATOR_SCHEMA)
    return doc


CLASSIFIER_TRAINING = {"accuracy": 0.91234, "cat_breed_accuracy": 0.85678, "num_images": 100, "steps": 380,
                       "train_seconds_this_run": 1192.5, "train_seconds": 2400.0, "num_train_images": 2449,
                       "temperature": 0.48, "ece": 0.2035, "ece_calibrated": 0.0114,
                       "validation": {"flip_off": {"num_images": 245}},
                       "config": {"backbone": "efficientnet_lite0", "image_size": 32, "learning_rate": 0.001,
                                  "max_train_steps": 380, "output_dir": "/home/someone/outputs",
                                  "test_time_flip": True}}
GENERATOR_TRAINING = {"steps": 1234, "train_seconds_this_run": 4500.0, "final_loss_mean_last_100": 0.43219,
                      "num_train_images": 1919, "config": {"sample_size": 16, "max_train_steps": 2400,
                                                           "learning_rate": 0.0003}}


@pytest.fixture(scope="module")
def models(tmp_path_factory, classifier_dir, pipeline_dir):
    """Copies of the tiny fixture models, each with the training_results.json a training script writes."""
    root = tmp_path_factory.mktemp("models")
    clf, gen = shutil.copytree(classifier_dir, root / "classifier"), shutil.copytree(pipeline_dir, root / "generator")
    (clf / layout.TRAINING_RESULTS).write_text(json.dumps(CLASSIFIER_TRAINING))
    (gen / layout.TRAINING_RESULTS).write_text(json.dumps(GENERATOR_TRAINING))
    return clf, gen


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder as `tiny-cats evaluate-*` and `export --output` leave it (no benchmark)."""
    root = tmp_path_factory.mktemp("results")
    (root / "evaluation" / "cache").mkdir(parents=True)
    (root / layout.CLASSIFIER_EVALUATION).write_text(json.dumps(classifier_doc()))
    (root / layout.GENERATOR_EVALUATION).write_text(json.dumps(generator_doc()))
    Image.new("RGB", (8, 8), "red").save(root / layout.CLASSIFIER_CONFUSION_PNG)
    Image.new("RGB", (8, 8), "blue").save(root / layout.GENERATOR_GRID_PNG)
    Image.new("RGB", (8, 8), "green").save(root / layout.GENERATOR_NEIGHBOURS_PNG)  # photo thumbnails: stay local
    (root / "evaluation" / "cache" / "real_features.json").write_text("{}")  # a cache: not part of the package
    (root / "onnx").mkdir()
    (root / layout.ONNX_MANIFEST).write_text('{"made_up": true}')
    (root / layout.CLASSIFIER_ONNX).write_bytes(b"not a real graph")
    return root


def build(tmp_path, models, results=None, repo_id=REPO, name="hub_upload"):
    return build_package(models[0], models[1], tmp_path / name, results_dir=results, repo_id=repo_id)


def card_of(package):
    return ModelCard.load(package / layout.MODEL_CARD)


# ----------------------------------------------------------------------------- package and card (no network)


def test_package_layout_and_card_numbers_come_from_the_json(models, results, tmp_path):
    package = build(tmp_path, models, results)
    files = dict(package_files(package))
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "modeling_tiny_cats.py", "labels.py",
                 "model_index.json", "pipeline_tiny_dit.py", "transformer/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", layout.CLASSIFIER_EVALUATION, layout.GENERATOR_EVALUATION,
                 layout.CLASSIFIER_CONFUSION_PNG, layout.CLASSIFIER_ONNX, layout.ONNX_MANIFEST,
                 layout.CLASSIFIER_TRAINING_RESULTS, layout.GENERATOR_TRAINING_RESULTS, "README.md"):
        assert name in files, name
    assert layout.TRAINING_RESULTS not in files and not any("cache" in name for name in files)
    assert layout.INFERENCE_BENCHMARK not in files
    assert layout.GENERATOR_NEIGHBOURS_PNG not in files  # thumbnails of the data folder's photos are never uploaded

    card = card_of(package)
    data = card.data
    assert (data.license, data.library_name) == ("apache-2.0", "transformers")
    assert data.pipeline_tag == "image-classification"
    assert data.datasets == [DATASET_ID] and {"accuracy", "f1", "fid"} <= set(data.metrics)
    front = yaml.safe_load(card.content.split("---")[1])
    model_name, parsed = model_index_to_eval_results(front["model-index"])
    assert model_name == "tiny-cats-model"
    values = {(r.task_type, r.metric_name): r.metric_value for r in parsed}
    clf, gen = classifier_doc(), generator_doc()
    breed_accuracy = gen["breed_accuracy"]["overall"]
    assert values == {
        ("image-classification", "Accuracy (13 labels)"): clf["metrics"]["accuracy"],
        ("image-classification", "Macro F1 (13 labels)"): clf["metrics"]["macro_f1"],
        ("image-classification", "Cat-breed accuracy (12 breeds, cat photos)"): clf["cats_only"]["top1_12way"],
        ("unconditional-image-generation", "FID"): gen["fid"],
        ("unconditional-image-generation", "KID"): gen["kid_mean"],
        ("unconditional-image-generation", "Precision"): gen["precision"],
        ("unconditional-image-generation", "Recall"): gen["recall"],
        ("unconditional-image-generation", "Breed accuracy (judged by the classifier)"): breed_accuracy,
    }

    text = card.text
    for name, scores in clf["metrics"]["per_class"].items():
        row = (f"| {name} | {scores['support']} | {100 * scores['precision']:.2f}% | {100 * scores['recall']:.2f}% "
               f"| {100 * scores['f1']:.2f}% | ")
        breed = gen["breed_accuracy"]["per_breed"].get(name)
        assert row + (f"{100 * breed:.2f}% |" if breed is not None else "n/a (not generated) |") in text, name
    assert f"| Accuracy, 13 labels | {100 * clf['metrics']['accuracy']:.2f}% |" in text
    assert "both directions):\nBirman / Ragdoll (9), Bombay / other (2).\n" in text
    assert f"| FID (lower is better) | {gen['fid']:.1f} |" in text
    assert f"{1000 * gen['kid_mean']:.1f} ± {1000 * gen['kid_std']:.1f}" in text
    assert "| FID floor: 48 real vs 48 other real cats (generated vs the same 48: 125.5) | 31.2 |" in text
    assert "well below 1 would mean copies) | 1.1250 |" in text
    assert f"accuracy {100 * CLASSIFIER_TRAINING['accuracy']:.2f}%" in text
    assert "2,449 training photos in\n40.0 min (all runs of it)" in text  # summed over resumes
    assert "temperature of 0.4800, fitted on\n245 training photos" in text and "0.2035 before, 0.0114 after" in text
    assert "classified together with its mirror image" in text  # the recipe's test_time_flip
    assert "cat photos in 75.0 min (last run)" in text  # a report from before train_seconds was kept
    assert f"{GENERATOR_TRAINING['steps']:,} optimizer steps (of {2400:,} planned" in text
    assert f"{GENERATOR_TRAINING['final_loss_mean_last_100']:.4f}" in text
    assert "/home/someone" not in text  # local paths of the training config stay out
    assert "Inference speed: not measured." in text
    assert f"![Confusion matrix]({layout.CLASSIFIER_CONFUSION_PNG})" in text and "onnx/manifest.json" in text
    assert "from diffusers import TinyDiTPipeline" not in text

    snippets = extract_snippets(card.content)
    assert len(snippets) == 4 and all(REPO in s.code for s in snippets)
    assert {f"examples/{s.name}": s.code for s in snippets} == {
        name: (package / name).read_text() for name in files if name.startswith("examples/")}


def test_missing_results_render_not_measured(classifier_dir, pipeline_dir, tmp_path):
    package = build_package(classifier_dir, pipeline_dir, tmp_path / "pkg", repo_id=REPO)
    card = card_of(package)
    assert card.data.eval_results is None and "model-index" not in card.content
    for what in ("Classifier evaluation", "Generator evaluation", "Inference speed", "Classifier training results",
                 "Generator training results"):
        assert f"{what}: {NOT_MEASURED}." in card.text
    assert f"| Bengal | {NOT_MEASURED} | {NOT_MEASURED} |" in card.text
    assert not (package / "evaluation").exists() and not (package / "onnx").exists()


def test_a_file_differing_between_the_models_is_refused(models, tmp_path):
    generator = shutil.copytree(models[1], tmp_path / "generator")
    # e.g. a generator folder saved by an older tiny-cats, whose pipeline still carried labels.py
    (generator / "labels.py").write_text((models[0] / "labels.py").read_text() + "\n# changed\n")
    with pytest.raises(ValueError, match=r"labels\.py differs between the classifier .* and the generator"):
        build_package(models[0], generator, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists() and not list(tmp_path.glob(".pkg*"))  # no half-built folder left


def test_invalid_results_and_unsafe_package_folders_are_refused(models, results, tmp_path):
    broken = shutil.copytree(results, tmp_path / "broken")
    doc = classifier_doc()
    doc["metrics"]["accuracy"] = 1.5
    (broken / layout.CLASSIFIER_EVALUATION).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="not a valid classifier document"):
        build(tmp_path, models, broken)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(ValueError, match="refusing to replace"):
        build(tmp_path, models, name="mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="would contain the input"):
        build_package(models[0], models[1], models[0].parent)


def test_rebuild_replaces_the_previous_package(models, results, tmp_path):
    build(tmp_path, models, results)
    package = build(tmp_path, models)
    assert not (package / "evaluation").exists() and (package / "README.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub_upload"]


# ----------------------------------------------------------------------------- upload


def run_snippet(snippet, hub, workdir):
    """Run one card snippet in a fresh process with its own HF cache; remote-code ones without tiny_cats."""
    workdir.mkdir()
    remote = "trust_remote_code=True" in snippet.code
    env = {**child_env(workdir), **hub.client_env(workdir / "hf_home")}
    done = subprocess.run([PYTHON, "-c", (BLOCK_TINY_CATS if remote else "") + snippet.code], capture_output=True,
                          text=True, env=env, cwd=workdir, timeout=300)
    assert done.returncode == 0, f"{snippet.name}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_publish_then_every_card_snippet_works_against_the_repo(local_hub, models, results, pipeline_dir,  # noqa: F811
                                                                  tmp_path):
    package = build(tmp_path, models, results)
    result = publish(REPO, package, token=TOKEN)
    assert result.commit_oid == local_hub.head(REPO) and result.revision == "main"
    assert sorted(HfApi().list_repo_files(REPO)) == sorted([".gitattributes"] + [name for name, _ in result.files])
    assert local_hub.unhandled == []

    card = open(hf_hub_download(REPO, "README.md")).read()
    snippets = extract_snippets(card)
    remote = ["trust_remote_code=True" in s.code for s in snippets]
    assert any(remote) and not all(remote)
    size = json.loads((pipeline_dir / "transformer" / "config.json").read_text())["sample_size"]
    for i, snippet in enumerate(snippets):
        out = run_snippet(snippet, local_hub, tmp_path / f"run{i}")
        if "image-classification" in snippet.code:
            lines = [line.split() for line in out.strip().splitlines()]
            assert len(lines) == 3 and all(label in LABELS and 0 <= float(score) <= 1 for label, score in lines), out
        else:
            count, width, height = map(int, re.search(r"saved (\d+) images of (\d+)x(\d+) pixels", out).groups())
            assert count >= 1 and (width, height) == (size, size)
            saved = sorted((tmp_path / f"run{i}").glob("*.png"))
            assert len(saved) == count and all(Image.open(p).size == (size, size) for p in saved)

    blobs = [p.read_bytes() for p in (local_hub.storage_dir / "blobs").iterdir()]
    assert blobs and not any(TOKEN.encode() in blob for blob in blobs)
    assert not any(TOKEN.encode() in p.read_bytes() for p in package.rglob("*") if p.is_file())


def test_second_publish_makes_a_new_revision_and_keeps_the_old(local_hub, models, results, tmp_path):  # noqa: F811
    first = publish(REPO, build(tmp_path, models, results), token=TOKEN).commit_oid
    second = publish(REPO, build(tmp_path, models), token=TOKEN).commit_oid
    api = HfApi()
    assert second != first and local_hub.head(REPO) == second and api.model_info(REPO).sha == second
    assert layout.CLASSIFIER_EVALUATION not in api.list_repo_files(REPO)  # the repo mirrors the package
    old = json.loads(open(hf_hub_download(REPO, layout.CLASSIFIER_EVALUATION, revision=first)).read())
    assert old == classifier_doc() and api.model_info(REPO, revision=first).sha == first
    assert NOT_MEASURED in open(hf_hub_download(REPO, "README.md")).read()
    assert publish(REPO, tmp_path / "hub_upload", token=TOKEN).commit_oid == second  # nothing new: no empty commit


def test_publish_to_a_branch_of_a_private_repo(local_hub, models, tmp_path):  # noqa: F811
    result = publish(REPO, build(tmp_path, models), token=TOKEN, private=True, revision="candidate")
    api = HfApi(token=TOKEN)
    assert api.model_info(REPO).private and result.revision == "candidate"
    assert local_hub.head(REPO, "candidate") == result.commit_oid != local_hub.head(REPO)
    assert api.list_repo_files(REPO) == [".gitattributes"]  # main untouched
    assert "README.md" in api.list_repo_files(REPO, revision="candidate")


def test_dropped_commit_fails_clearly_and_keeps_the_revision(local_hub, models, results, tmp_path):  # noqa: F811
    before = publish(REPO, build(tmp_path, models), token=TOKEN).commit_oid
    package = build(tmp_path, models, results)
    local_hub.fail_next_commit = "drop"
    with pytest.raises(PublishError, match="lost the connection .* while committing .* atomic") as err:
        publish(REPO, package, token=TOKEN, attempts=1)
    assert "\n" not in str(err.value) and err.value.__cause__ is None
    assert local_hub.head(REPO) == before and layout.CLASSIFIER_EVALUATION not in HfApi().list_repo_files(REPO)

    local_hub.fail_next_commit = "drop"  # once: the retry goes through
    after = publish(REPO, package, token=TOKEN, **FAST).commit_oid
    commits = [status for method, path, status in local_hub.requests if path.endswith("/commit/main")]
    assert commits[-2:] == ["aborted", 200] and after == local_hub.head(REPO) != before

    local_hub.fail_next_commit = "500"
    publish(REPO, build(tmp_path, models), token=TOKEN, **FAST)
    commits = [status for method, path, status in local_hub.requests if path.endswith("/commit/main")]
    assert commits[-2:] == [500, 200]


def test_wrong_token_is_refused_and_never_shown(local_hub, models, tmp_path, capsys, caplog):  # noqa: F811
    secret = "hf_wrong_secret_value_4711"
    package = build(tmp_path, models)
    with pytest.raises(PublishError, match=r"the Hub refused the token \(401\)") as err:
        publish(REPO, package, token=secret, **FAST)
    shown = "".join(traceback.format_exception(err.value)) + repr(err.value) + caplog.text + str(capsys.readouterr())
    assert secret not in shown and local_hub.repos == {}

    env = {**child_env(tmp_path), **local_hub.client_env(tmp_path / "cli_home", token=secret)}
    done = subprocess.run([PYTHON, "-m", "tiny_cats.commands", "publish", "--repo-id", REPO, "--classifier", str(models[0]),
                           "--generator", str(models[1]), "--package-dir", str(tmp_path / "cli_pkg"), "--no-onnx"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 1 and secret not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("tiny-cats publish: error: the Hub refused the token (401)")


def test_dry_run_and_refusals_make_no_request(local_hub, models, tmp_path, capsys):  # noqa: F811
    package = tmp_path / "pkg"
    code = main(["publish", "--repo-id", REPO, "--dry-run", "--classifier", str(models[0]), "--generator",
                 str(models[1]), "--package-dir", str(package), "--no-onnx"])
    out = capsys.readouterr().out
    assert code == 0 and local_hub.requests == []
    size = (package / "model.safetensors").stat().st_size
    assert re.search(rf"^\s*{size:,}\s+model\.safetensors$", out, re.M) and "README.md" in out
    assert f"to {REPO}@main" in out.splitlines()[-1]

    with pytest.raises(PublishError, match="no Hugging Face token"):
        publish(REPO, package)
    with pytest.raises(ValueError, match="rebuild the package"):
        publish("tester/another-repo", package, token=TOKEN)
    (package / "notes.txt").write_text(f"token={TOKEN}\n")
    with pytest.raises(PublishError, match="notes.txt contains the Hub token") as err:
        publish(REPO, package, token=TOKEN)
    assert TOKEN not in str(err.value) and local_hub.requests == []



def test_publish_without_onnx_files_refuses_unless_told(local_hub, models, results, tmp_path, capsys):  # noqa: F811
    """The upload replaces the repo's files, and the web app loads the repo's onnx/: a results folder without
    onnx/ (a fresh clone before `tiny-cats export`) is refused in one line, unless --no-onnx says so."""
    bare = tmp_path / "results_without_onnx"
    shutil.copytree(results, bare, ignore=shutil.ignore_patterns("onnx"))
    argv = ["publish", "--repo-id", REPO, "--classifier", str(models[0]), "--generator", str(models[1]), "--results",
            str(bare), "--package-dir", str(tmp_path / "pkg")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no onnx/ in" in err[0] and "--no-onnx" in err[0] and "tiny-cats export" in err[0]
    assert local_hub.requests == [] and not (tmp_path / "pkg").exists()

    assert main([*argv[:-4], "--results", str(results), "--package-dir", str(tmp_path / "pkg"), "--no-onnx",
                 "--dry-run"]) == 0
    assert not (tmp_path / "pkg" / "onnx").exists() and (tmp_path / "pkg" / layout.CLASSIFIER_EVALUATION).is_file()
    assert main([*argv[:-4], "--results", str(results), "--package-dir", str(tmp_path / "pkg"), "--dry-run"]) == 0
    assert (tmp_path / "pkg" / layout.CLASSIFIER_ONNX).is_file() and local_hub.requests == []


def test_retries_are_bounded_and_only_for_transient_errors():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        raise requests.ConnectionError("reset")

    with pytest.raises(requests.ConnectionError):
        with_retries(flaky, "step", attempts=4, base_delay=1.0, sleep=sleeps.append)
    assert len(calls) == 4 and sleeps == [1.0, 2.0, 4.0]

    response = requests.Response()
    response.status_code = 401
    calls.clear()

    def refused():
        calls.append(1)
        raise HfHubHTTPError("401 Client Error", response=response)

    with pytest.raises(HfHubHTTPError):
        with_retries(refused, "step", attempts=4, base_delay=1.0, sleep=sleeps.append)
    assert len(calls) == 1


# ----------------------------------------------------------------------------- CI workflow


def test_train_workflow_calls_real_commands():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "train.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    parser = build_parser()
    called, scripts = set(), []
    for step in steps:
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["tiny-cats"]:
                called.add(parser.parse_args(words[1:]).command)  # unknown subcommands or flags exit here
            if words[:2] == ["accelerate", "launch"]:
                scripts += [w for w in words if w.endswith((".py", ".yaml"))]
    assert {"evaluate-classifier", "evaluate-generator", "benchmark", "export", "publish"} <= called
    assert {"training/train_classifier.py", "training/train_dit.py"} <= set(scripts)
    assert all((ROOT / script).is_file() for script in scripts), scripts
    publish_steps = [s for s in steps if "tiny-cats publish" in s.get("run", "") and "--dry-run" not in s["run"]]
    assert publish_steps and all(s["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}" for s in publish_steps)


def test_card_says_when_the_generator_is_a_mid_run_checkpoint(models, tmp_path):
    """A generator exported from a checkpoint (training/export_dit_checkpoint.py) is described as such."""
    generator = shutil.copytree(models[1], tmp_path / "generator")
    exported = {"steps": 6009, "exported_from": "outputs/dit_release/checkpoint-6009", "weights": "EMA",
                "config": {"sample_size": 16, "max_train_steps": 6800}}
    (generator / layout.TRAINING_RESULTS).write_text(json.dumps(exported))
    text = card_of(build(tmp_path, (models[0], generator))).text
    assert "6,009 optimizer steps so far: the weights are the EMA of a checkpoint of a run that is still training" in text
    assert "the time budget ran out" not in text


def test_card_says_when_the_classifier_is_a_soup(models, tmp_path):
    """A weight average (training/soup_classifiers.py) is described as one, with what each later run changed."""
    classifier = shutil.copytree(models[0], tmp_path / "classifier")
    soup = {"soup_of": [{"model": "runs/a/final", "steps": 1020, "train_seconds": 2628.6, "config_differences": {}},
                        {"model": "runs/p/final", "steps": 1020, "train_seconds": 2901.1,
                         "config_differences": {"cat_vs_not_weight": 1.0}}],
            "steps": 2040, "train_seconds": 5529.7, "num_train_images": 2204, "temperature": 0.47,
            "validation": {"flip_off": {"num_images": 245}, "flip_on": {"num_images": 245}},
            "config": {"pretrained": True, "test_time_flip": True, "output_dir": "outputs/soup/S_P"}}
    (classifier / layout.TRAINING_RESULTS).write_text(json.dumps(soup))
    text = card_of(build(tmp_path, (classifier, models[1]))).text
    assert "uniform average" in text and "2 fine-tuning runs" in text and "2,040 optimizer steps in all" in text
    assert "92.2 min of training together" in text
    assert "- run 2: `cat_vs_not_weight` = `1.0`" in text
    assert "temperature of 0.4700, fitted on\n245 training photos" in text
    assert "runs/p/final" not in text and "outputs/soup" not in text  # local paths stay out of the card
    assert "Expected calibration error on the" not in text  # a soup's own results hold no test-split check
    assert NOT_MEASURED not in text.split("## Training")[1].split("### Generator")[0]


def test_card_parameter_counts_match_num_parameters_of_the_bundled_models():
    """The card counts parameters from the safetensors header; BatchNorm statistics are buffers, not parameters."""
    from tiny_cats import TinyCatsForImageClassification, TinyDiTTransformer2DModel
    from tiny_cats.model_card import count_parameters

    folder = ROOT / "tiny_cats" / "pretrained"
    classifier = TinyCatsForImageClassification.from_pretrained(folder / "classifier")
    assert count_parameters(folder / "classifier" / "model.safetensors") == classifier.num_parameters()
    transformer = TinyDiTTransformer2DModel.from_pretrained(folder / "generator" / "transformer")
    weights = folder / "generator" / "transformer" / "diffusion_pytorch_model.safetensors"
    assert count_parameters(weights) == sum(p.numel() for p in transformer.parameters())
