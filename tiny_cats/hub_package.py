"""Assemble the model package (the Hub repo's content) from the two model folders and the results.

The layout is described once, in :mod:`tiny_cats.layout`. The folder is built in a temporary
sibling and renamed into place, so ``out_dir`` never holds half a package.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from huggingface_hub.utils import HFValidationError, validate_repo_id

from . import layout
from .evaluation.schemas import SCHEMAS, validate
from .files import staged_folder
from .model_card import check_card, extract_snippets, render_card

DEFAULT_REPO_ID = layout.DEFAULT_REPO_ID
# Result documents copied from a results folder, and the schema each must pass.
RESULT_SCHEMAS = {layout.CLASSIFIER_EVALUATION: "classifier", layout.GENERATOR_EVALUATION: "generator",
                  layout.INFERENCE_BENCHMARK: "benchmark"}
RESULT_PATTERNS = (f"{layout.EVALUATION_DIR}/*.json", f"{layout.EVALUATION_DIR}/*.png",
                   f"{layout.GENERATOR_BREED_GRIDS_DIR}/*.png", f"{layout.BENCHMARK_DIR}/*.json")
# Thumbnails of the data folder's photos (the memorisation check): kept local, never committed or uploaded.
LOCAL_ONLY_RESULTS = (layout.GENERATOR_NEIGHBOURS_PNG,)
# Written by the build itself, so never taken from a model folder.
GENERATED = (layout.MODEL_CARD, layout.TRAINING_RESULTS)

Plan = Dict[str, List[Tuple[Path, str]]]  # package path -> [(source file, where it came from)]


def check_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo id {repo_id!r}: {err}") from None
    if "/" not in repo_id:
        raise ValueError(f"repo id {repo_id!r} needs a namespace: USER_OR_ORG/NAME")
    return repo_id


def _visible_files(folder: Path) -> List[Path]:
    """Files below ``folder``, skipping hidden files and folders (caches, .gitattributes)."""
    return [p for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def _add(plan: Plan, dest: str, source: Path, origin: str) -> None:
    plan.setdefault(dest, []).append((source, origin))


def _plan_classifier(plan: Plan, folder: Path) -> None:
    """The classifier's top-level files go to the root (its folder is flat)."""
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json; not a saved classifier folder")
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in GENERATED:
            _add(plan, path.name, path, "classifier")
    if (folder / layout.TRAINING_RESULTS).is_file():
        _add(plan, layout.CLASSIFIER_TRAINING_RESULTS, folder / layout.TRAINING_RESULTS, "classifier")


def _plan_generator(plan: Plan, folder: Path) -> None:
    """Top-level files (model_index.json, pipeline code) plus each component folder of model_index.json."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{folder}: no model_index.json; not a saved diffusers pipeline folder")
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in GENERATED:
            _add(plan, path.name, path, "generator")
    index = json.loads(index_path.read_text())
    for component in [k for k, v in index.items() if isinstance(v, list) and not k.startswith("_")]:
        for path in _visible_files(folder / component):
            _add(plan, path.relative_to(folder).as_posix(), path, "generator")
    if (folder / layout.TRAINING_RESULTS).is_file():
        _add(plan, layout.GENERATOR_TRAINING_RESULTS, folder / layout.TRAINING_RESULTS, "generator")


def _plan_results(plan: Plan, folder: Path) -> None:
    """evaluation/ and benchmarks/ JSON and PNG files; each known document must pass its schema."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such results folder")
    for pattern in RESULT_PATTERNS:
        for path in sorted(folder.glob(pattern)):
            dest = path.relative_to(folder).as_posix()
            if dest in LOCAL_ONLY_RESULTS:
                continue
            if dest in RESULT_SCHEMAS:
                try:
                    validate(json.loads(path.read_text()), SCHEMAS[RESULT_SCHEMAS[dest]])
                except ValueError as err:
                    raise ValueError(f"{path}: not a valid {RESULT_SCHEMAS[dest]} document: {err}") from None
            _add(plan, dest, path, "results")


def _plan_onnx(plan: Plan, folder: Path, required: bool) -> None:
    onnx = folder / layout.ONNX_DIR
    if not onnx.is_dir():
        if required:
            raise FileNotFoundError(f"{folder}: no {layout.ONNX_DIR}/ folder "
                                    f"(run `tiny-cats export --output {folder}`)")
        return
    for path in _visible_files(onnx):
        _add(plan, path.relative_to(folder).as_posix(), path, "onnx")


def check_collisions(plan: Plan) -> Dict[str, Path]:
    """One source per package path; a name from two places is fine only with identical bytes."""
    chosen = {}
    for dest, sources in sorted(plan.items()):
        first, first_origin = sources[0]
        for other, origin in sources[1:]:
            if not filecmp.cmp(first, other, shallow=False):
                raise ValueError(f"{dest} differs between the {first_origin} ({first}) and the {origin} ({other}); "
                                 "a package can hold only one: rebuild both with the same tiny-cats version")
        chosen[dest] = first
    return chosen


def _prepare_out_dir(out: Path, inputs: List[Path]) -> None:
    """Refuse to replace a folder that is not a previous package, or one that holds an input."""
    resolved = out.resolve()
    for source in inputs:
        source = source.resolve()
        if resolved == source or resolved in source.parents:
            raise ValueError(f"package folder {out} would contain the input {source}; choose another --package-dir")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (out / "model_index.json").is_file():
            raise ValueError(f"{out} is not empty and is not a model package; refusing to replace it")


def build_package(classifier_dir: os.PathLike, generator_dir: os.PathLike, out_dir: os.PathLike,
                  results_dir: Optional[os.PathLike] = None, onnx_dir: Optional[os.PathLike] = None,
                  repo_id: str = DEFAULT_REPO_ID, include_onnx: bool = True) -> Path:
    """Build the package for ``repo_id`` in ``out_dir`` (replacing a previous package there).

    ``results_dir``: a folder holding ``evaluation/`` and/or ``benchmarks/`` (absent parts are
    "not measured" in the card). ``onnx_dir``: a folder holding ``onnx/``; by default the
    results folder's ``onnx/`` when there is one (``include_onnx=False``: none).
    """
    check_repo_id(repo_id)
    classifier_dir, generator_dir, out = Path(classifier_dir), Path(generator_dir), Path(out_dir)
    inputs = [classifier_dir, generator_dir] + [Path(p) for p in (results_dir, onnx_dir) if p is not None]
    _prepare_out_dir(out, inputs)
    plan: Plan = {}
    _plan_classifier(plan, classifier_dir)
    _plan_generator(plan, generator_dir)
    if results_dir is not None:
        _plan_results(plan, Path(results_dir))
    if include_onnx and (onnx_dir is not None or results_dir is not None):
        _plan_onnx(plan, Path(onnx_dir if onnx_dir is not None else results_dir), required=onnx_dir is not None)
    files = check_collisions(plan)

    with staged_folder(out) as stage:  # a failed build or check leaves the previous package as it was
        for dest, source in files.items():
            (stage / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, stage / dest)
        card = render_card(stage, repo_id)
        (stage / layout.MODEL_CARD).write_text(card)
        for snippet in extract_snippets(card):
            if snippet.name:
                (stage / layout.EXAMPLES_DIR).mkdir(exist_ok=True)
                (stage / layout.EXAMPLES_DIR / snippet.name).write_text(snippet.code)
        validate_package(stage, repo_id)
    return out


def required_files(package_dir: Path) -> List[str]:
    """The files both one-line usages need, including the remote code the configs name."""
    needed = [layout.MODEL_CARD, *layout.CLASSIFIER_FILES, *layout.GENERATOR_FILES]
    for config in ("config.json", "preprocessor_config.json"):
        path = package_dir / config
        auto_map = json.loads(path.read_text()).get("auto_map", {}) if path.is_file() else {}
        for target in auto_map.values():
            targets = target if isinstance(target, list) else [target]
            needed += [f"{t.rsplit('.', 1)[0]}.py" for t in targets if t]
    return list(dict.fromkeys(needed))


def package_files(package_dir: os.PathLike) -> List[Tuple[str, int]]:
    """(path, size) of every file that would be uploaded, sorted."""
    root = Path(package_dir)
    return [(p.relative_to(root).as_posix(), p.stat().st_size) for p in _visible_files(root)]


def validate_package(package_dir: os.PathLike, repo_id: Optional[str] = None) -> List[Tuple[str, int]]:
    """Check a package before upload: required files, result schemas, card metadata and snippets.

    Returns :func:`package_files`; raises ``ValueError``/``FileNotFoundError`` naming the problem.
    """
    root = Path(package_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such package folder")
    missing = [name for name in required_files(root) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: package lacks {', '.join(missing)}")
    for dest, kind in RESULT_SCHEMAS.items():
        if (root / dest).is_file():
            try:
                validate(json.loads((root / dest).read_text()), SCHEMAS[kind])
            except ValueError as err:
                raise ValueError(f"{root / dest}: not a valid {kind} document: {err}") from None
    check_card((root / layout.MODEL_CARD).read_text(), repo_id)
    return package_files(root)
