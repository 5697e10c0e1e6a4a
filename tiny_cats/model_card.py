"""The model card (README.md) of a model package, rendered from the package's own files.

Every number in the card is read from a file of the package: the evaluation and benchmark
JSON, the training results, the model configs, the weights' headers. A result that is
absent renders as "not measured", never as a number typed by hand. The YAML front matter
is built with huggingface_hub's ``ModelCardData``/``EvalResult``, so the model-index is
written by the same library that parses it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import layout

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "hub_templates"
TEMPLATE_NAME = "model_card.md.j2"
NOT_MEASURED = "not measured"
# The Hub copy of Oxford-IIIT Pet that tiny_cats.data reads (37-way ClassLabel): a dataset id
# the Hub links, unlike the bare name "oxford-iiit-pet", which is no Hub repo.
DATASET_ID = "timm/oxford-iiit-pet"
DATASET_NAME = "Oxford-IIIT Pet (12 cat breeds + other)"
TAGS = ["image-classification", "cats", "oxford-iiit-pet", "efficientnet", "diffusers", "diffusion-transformer",
        "flow-matching", "class-conditional-image-generation"]
# Training config keys that name local paths: meaningless to a reader of the card.
PRIVATE_CONFIG_KEYS = ("output_dir", "resume_from_checkpoint")

_SNIPPET = re.compile(r"(?:<!--\s*example:\s*(?P<name>[\w.-]+\.py)\s*-->\s*\n)?^```python\n(?P<code>.*?)^```",
                      re.S | re.M)


@dataclass(frozen=True)
class Snippet:
    name: Optional[str]  # the examples/ file name given in the card, if any
    code: str


def extract_snippets(card_text: str) -> List[Snippet]:
    """The fenced ```python blocks of a card, in order (the card is their only copy)."""
    return [Snippet(m.group("name"), m.group("code")) for m in _SNIPPET.finditer(card_text)]


def read_json(path: Path) -> Optional[Any]:
    return json.loads(path.read_text()) if path.is_file() else None


# Buffers saved beside the weights (BatchNorm statistics), which ``model.num_parameters()`` does not count.
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def count_parameters(path: Path) -> Optional[int]:
    """Number of parameters in a safetensors file, from its header (no tensor is loaded); buffers are left out."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys() if not name.endswith(BUFFER_SUFFIXES))


def load_results(package_dir: Path) -> Dict[str, Any]:
    """Everything the card shows, read from the package; ``None`` where a file is absent."""
    root = Path(package_dir)
    return {
        "clf": read_json(root / layout.CLASSIFIER_EVALUATION),
        "gen": read_json(root / layout.GENERATOR_EVALUATION),
        "bench": read_json(root / layout.INFERENCE_BENCHMARK),
        "clf_train": read_json(root / layout.CLASSIFIER_TRAINING_RESULTS),
        "gen_train": read_json(root / layout.GENERATOR_TRAINING_RESULTS),
        "clf_config": read_json(root / "config.json") or {},
        "dit_config": read_json(root / "transformer" / "config.json") or {},
        "model_index": read_json(root / "model_index.json") or {},
        "clf_params": count_parameters(root / "model.safetensors"),
        "dit_params": count_parameters(root / "transformer" / "diffusion_pytorch_model.safetensors"),
        "files": {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()},
    }


def eval_results(results: Dict[str, Any]) -> List[EvalResult]:
    """The model-index entries: only values present in evaluation/*.json."""
    found = []
    clf, gen = results["clf"], results["gen"]
    if clf:
        common = dict(task_type="image-classification", task_name="Image Classification", dataset_type=DATASET_ID,
                      dataset_name=DATASET_NAME, dataset_split=clf["split"])
        metrics = clf["metrics"]
        found.append(EvalResult(metric_type="accuracy", metric_value=metrics["accuracy"],
                                metric_name="Accuracy (13 labels)", **common))
        found.append(EvalResult(metric_type="f1", metric_value=metrics["macro_f1"], metric_name="Macro F1 (13 labels)",
                                metric_args={"average": "macro"}, **common))
        if clf["cats_only"]["top1_12way"] is not None:
            found.append(EvalResult(metric_type="accuracy", metric_value=clf["cats_only"]["top1_12way"],
                                    metric_name="Cat-breed accuracy (12 breeds, cat photos)", **common))
    if gen:
        common = dict(task_type="unconditional-image-generation", task_name="Class-conditional image generation",
                      dataset_type=DATASET_ID, dataset_name=DATASET_NAME)
        found.append(EvalResult(metric_type="fid", metric_value=gen["fid"], metric_name="FID", **common))
        found.append(EvalResult(metric_type="kid", metric_value=gen["kid_mean"], metric_name="KID", **common))
        for key in ("precision", "recall"):
            found.append(EvalResult(metric_type=key, metric_value=gen[key], metric_name=key.capitalize(), **common))
        found.append(EvalResult(metric_type="accuracy", metric_value=gen["breed_accuracy"]["overall"],
                                metric_name="Breed accuracy (judged by the classifier)", **common))
    return found


def card_data(results: Dict[str, Any], model_name: str) -> ModelCardData:
    evals = eval_results(results)
    return ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=list(TAGS),
        datasets=[DATASET_ID],
        metrics=sorted({e.metric_type for e in evals}) or None,
        eval_results=evals or None,
    )


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, jinja2.Undefined)


def _formatter(spec: str, scale: float = 1.0, suffix: str = ""):
    def fmt(value: Any) -> str:
        if _missing(value):
            return NOT_MEASURED
        return f"{value if scale == 1 else value * scale:{spec}}{suffix}"
    return fmt


def label_rows(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per label of the classifier's config: its test scores and the generator's breed accuracy."""
    per_class = ((results["clf"] or {}).get("metrics") or {}).get("per_class") or {}
    per_breed = ((results["gen"] or {}).get("breed_accuracy") or {}).get("per_breed") or {}
    generated = set(results["model_index"].get("id2label", {}).values())
    id2label = results["clf_config"].get("id2label", {})
    return [{"label": name, "scores": per_class.get(name), "generated": name in generated,
             "breed_accuracy": per_breed.get(name)}
            for _, name in sorted(id2label.items(), key=lambda item: int(item[0]))]


def environment() -> jinja2.Environment:
    if not (TEMPLATE_DIR / TEMPLATE_NAME).is_file():
        raise FileNotFoundError(f"model card template missing: {TEMPLATE_DIR / TEMPLATE_NAME} "
                                "(publish from a source checkout of tiny-cats)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.ChainableUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        pct=_formatter(".2f", 100, "%"),
        num=_formatter(".4f"),
        num1=_formatter(".1f"),
        milli=_formatter(".1f", 1000),
        ms=_formatter(".1f", suffix=" ms"),
        minutes=_formatter(".1f", 1 / 60, " min"),
        count=_formatter(","),
        mib=_formatter(".1f", 1 / 2**20, " MiB"),
    )
    return env


def render_card(package_dir: Path, repo_id: str) -> str:
    """README.md text for the package in ``package_dir``, with usage code naming ``repo_id``."""
    results = load_results(Path(package_dir))
    model_name = repo_id.split("/")[-1]
    data = card_data(results, model_name)
    config = {}
    for name in ("clf_train", "gen_train"):
        options = (results[name] or {}).get("config") or {}
        config[name] = {k: v for k, v in options.items() if k not in PRIVATE_CONFIG_KEYS}
    return environment().get_template(TEMPLATE_NAME).render(
        card_data=data.to_yaml(), repo_id=repo_id, model_name=model_name, labels=label_rows(results),
        not_measured=NOT_MEASURED, dataset_id=DATASET_ID, layout=layout, train_config=config, **results)


def check_card(text: str, repo_id: Optional[str] = None) -> ModelCard:
    """Parse the front matter as the Hub client does and compile every snippet; ValueError if wrong."""
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as err:  # the client raises ValueError or yaml errors for broken metadata
        raise ValueError(f"model card metadata is invalid: {err}") from err
    data = card.data
    for key, wanted in (("license", "apache-2.0"), ("library_name", "transformers"),
                        ("pipeline_tag", "image-classification")):
        if getattr(data, key) != wanted:
            raise ValueError(f"model card metadata: {key} is {getattr(data, key)!r}, expected {wanted!r}")
    if not data.datasets:
        raise ValueError("model card metadata: no datasets listed")
    snippets = extract_snippets(card.text)
    if not snippets:
        raise ValueError("model card has no ```python usage snippet")
    for i, snippet in enumerate(snippets, 1):
        try:
            compile(snippet.code, snippet.name or f"<card snippet {i}>", "exec")
        except SyntaxError as err:
            raise ValueError(f"model card snippet {snippet.name or i} is not valid Python: {err}") from err
        if repo_id is not None and repo_id not in snippet.code:
            raise ValueError(f"model card snippet {snippet.name or i} does not load {repo_id!r}; rebuild the package "
                             "with this repo id")
    return card
