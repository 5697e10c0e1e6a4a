"""The tiny-cats command and the examples, end to end."""

import subprocess

import pytest
from PIL import Image

from tiny_cats.cli import main
from tiny_cats.defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR
from tiny_cats.labels import CAT_BREEDS, LABELS

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
    code = main(["classify", *paths, "--model", str(classifier_dir), "--top-k", "2", "--batch-size", str(batch_size)])
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
    done = subprocess.run([PYTHON, "-m", "tiny_cats.cli", "classify", str(bad)], capture_output=True, text=True,
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
                 "-o", str(out), "--model", str(pipeline_dir), "--quiet"])
    assert code == 0 and Image.open(out).size == (6 * 16, 16)
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_generate_unknown_breed(pipeline_dir, tmp_path, capsys):
    code = main(["generate", "--breed", "tabby", "--model", str(pipeline_dir), "-o", str(tmp_path / "g.png")])
    assert code == 2 and "unknown breed 'tabby'" in capsys.readouterr().err
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
