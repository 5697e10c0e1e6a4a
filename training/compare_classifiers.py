"""Compare two saved classifiers photo by photo on the validation split: is the candidate better than the
baseline by more than the luck of which photos were held out?

    python training/compare_classifiers.py CANDIDATE_DIR BASELINE_DIR --flip on --output outputs/compare.json

Both models see the same validation photos, carved out of the training split as train_classifier.py
carves them (``--validation_fraction``, ``--validation_seed``, ``--validation_fold``). A model whose ``training_results.json`` names
other values is refused: it trained on some of these photos. Each model uses its own image processor, and its
own temperature, refitted on these logits the way the shipped temperature is fitted. Then the per-photo
calibrated NLL and correctness are bootstrapped in pairs, 10,000 resamples.
``nll.p_candidate_better`` is the share of resamples in which the candidate's mean NLL is lower.
``cat_vs_not_nll`` does the same for the yes/no question "is it a cat?", with P(not a cat) = the
calibrated probability of ``other``. On a few hundred photos a good model makes no cat-vs-not errors
at all, and this loss still tells two such models apart.
The test split is never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from tiny_cats import TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.classifier.labels import OTHER_ID
from tiny_cats.data import default_data_dir, load_pets, split_validation, validation_split_of
from tiny_cats.evaluation.classifier_metrics import paired_bootstrap
from tiny_cats.files import write_text
from tiny_cats.training.calibration import classification_metrics, fit_temperature
from tiny_cats.training.loaders import make_eval_loader


def check_same_split(model_dir: str, fraction: float, seed: int, fold: int) -> None:
    """Refuse a model that trained on some of these validation photos (one without a record is trusted)."""
    if not (Path(model_dir) / "config.json").is_file():
        raise SystemExit(f"error: {model_dir} is not a saved classifier folder (no config.json)")
    path = Path(model_dir) / "training_results.json"
    if not path.is_file():
        return
    trained = validation_split_of(json.loads(path.read_text()).get("config", {}))
    if trained != (fraction, seed, fold):
        raise SystemExit(f"error: {model_dir} held out validation_fraction {trained[0]} with validation seed "
                         f"{trained[1]} (fold {trained[2]}), not {fraction} with {seed} (fold {fold}): it trained on "
                         "some of these validation photos")


@torch.no_grad()
def logits_and_labels(model, processor, dataset, flip: bool, batch_size: int):
    """Temperature-1 logits (test-time flip on or off) and labels of every photo of ``dataset``; the model's
    own temperature and flip settings are left as they were."""
    saved = model.config.temperature, model.config.test_time_flip
    model.config.temperature, model.config.test_time_flip = 1.0, flip
    model.eval()
    logits, labels = [], []
    try:
        for batch in make_eval_loader(dataset, processor, batch_size, num_workers=0):
            logits.append(model(pixel_values=batch["pixel_values"]).logits.float())
            labels.append(batch["labels"])
    finally:
        model.config.temperature, model.config.test_time_flip = saved
    return torch.cat(logits), torch.cat(labels)


def validation_scores(model_dir: str, dataset, flip: str, batch_size: int) -> dict:
    """Temperature-1 logits of every validation photo, the temperature refitted on them, and per-photo scores."""
    model = TinyCatsForImageClassification.from_pretrained(model_dir)
    processor = TinyCatsImageProcessor.from_pretrained(model_dir)
    if flip != "saved":
        model.config.test_time_flip = flip == "on"
    logits, labels = logits_and_labels(model, processor, dataset, model.config.test_time_flip, batch_size)
    return {"model": str(model_dir), "test_time_flip": bool(model.config.test_time_flip),
            "image_size": processor.size["height"], **scores_of_logits(logits, labels)}


def scores_of_logits(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """The temperature refitted on these logits, the metrics after it, and the per-photo scores to pair."""
    temperature = fit_temperature(logits, labels)
    metrics = classification_metrics(logits, labels, OTHER_ID, temperature)
    # cat vs not a cat as a yes/no question: P(not a cat) is the `other` label's calibrated probability
    other = (logits / temperature).softmax(-1)[:, OTHER_ID].clamp(1e-12, 1 - 1e-12)
    cat_vs_not_nll = -torch.where(labels == OTHER_ID, other, 1 - other).log()
    return {"temperature": round(temperature, 4),
            **{k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
            "cat_vs_not_nll_calibrated": round(cat_vs_not_nll.mean().item(), 4),
            "cat_vs_not_nll_per_photo": cat_vs_not_nll,
            "nll_per_photo": F.cross_entropy(logits / temperature, labels, reduction="none"),
            "correct_per_photo": (logits.argmax(-1) == labels).float(),
            "cat_vs_not_error_per_photo": ((logits.argmax(-1) == OTHER_ID) != (labels == OTHER_ID)).float()}


def bootstrapped_loss(candidate: dict, baseline: dict, key: str, resamples: int) -> dict:
    found = paired_bootstrap(candidate[key], baseline[key], resamples)
    return {"candidate_minus_baseline": round(found["difference"], 4),
            "interval_95": [round(found["low"], 4), round(found["high"], 4)],
            "p_candidate_better": round(found["p_a_below_b"], 4)}


def compare(candidate: dict, baseline: dict, resamples: int) -> dict:
    accuracy = paired_bootstrap(candidate["correct_per_photo"], baseline["correct_per_photo"], resamples)
    only = candidate["correct_per_photo"] - baseline["correct_per_photo"]
    return {
        "nll": bootstrapped_loss(candidate, baseline, "nll_per_photo", resamples),
        "cat_vs_not_nll": bootstrapped_loss(candidate, baseline, "cat_vs_not_nll_per_photo", resamples),
        "accuracy": {"candidate_minus_baseline": round(accuracy["difference"], 4),
                     "interval_95": [round(accuracy["low"], 4), round(accuracy["high"], 4)],
                     "only_candidate_right": int((only > 0).sum()), "only_baseline_right": int((only < 0).sum())},
        "resamples": resamples,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("candidate", help="saved classifier folder (config.json, model.safetensors, processor)")
    parser.add_argument("baseline", help="saved classifier folder to compare against")
    parser.add_argument("--data", default=None, help="Oxford-IIIT Pet folder (default: the usual places)")
    parser.add_argument("--validation_fraction", type=float, default=0.1)
    parser.add_argument("--validation_seed", type=int, default=0)
    parser.add_argument("--validation_fold", type=int, default=0, help="which of the 1 / fraction folds")
    parser.add_argument("--flip", choices=["on", "off", "saved"], default="saved",
                        help="test-time flip for both models (saved: each model's own setting)")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for model_dir in (args.candidate, args.baseline):
        check_same_split(model_dir, args.validation_fraction, args.validation_seed, args.validation_fold)
    data = args.data or default_data_dir()
    if data is None:
        raise SystemExit("error: no Oxford-IIIT Pet folder found: pass --data or set TINY_CATS_DATA")
    _, dataset = split_validation(load_pets(data)["train"], args.validation_fraction, args.validation_seed,
                                  args.validation_fold)
    candidate, baseline = (validation_scores(d, dataset, args.flip, args.batch_size)
                           for d in (args.candidate, args.baseline))
    result = {"what": "paired comparison on the validation split (training/compare_classifiers.py)",
              "validation_photos": len(dataset), **compare(candidate, baseline, args.resamples),
              **{name: {k: v for k, v in scores.items() if not k.endswith("_per_photo")}
                 for name, scores in (("candidate", candidate), ("baseline", baseline))}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        write_text(text + "\n", args.output)
    return result


if __name__ == "__main__":
    main()
