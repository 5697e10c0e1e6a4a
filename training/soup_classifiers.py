"""Average the weights of classifiers fine-tuned from the same ImageNet start (a uniform "model soup",
Wortsman et al. 2022): one model, at one model's inference cost.

    python training/soup_classifiers.py outputs/classifier/final RUN/final --output outputs/soup/NAME

Every floating-point tensor (weights and BatchNorm running statistics) is the mean of the ingredients';
integer buffers, the config, the image processor and the test-time flip come from the first ingredient.
The ingredients must have held out the same validation photos: the temperature is refitted on them, with
the flip the soup ships with, as train_classifier.py fits it. ``training_results.json`` names the
ingredients, what each one's training config changed from the first's, and counts, as the soup's training
cost, the sum of their training wall-clock. The test split is not read: evaluate the soup with
``tiny-cats evaluate-classifier``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_classifiers import logits_and_labels  # noqa: E402

from tiny_cats import TinyCatsForImageClassification, TinyCatsImageProcessor  # noqa: E402
from tiny_cats.classifier.labels import OTHER_ID  # noqa: E402
from tiny_cats.data import default_data_dir, load_pets, split_validation, validation_split_of  # noqa: E402
from tiny_cats.model_card import PRIVATE_CONFIG_KEYS  # noqa: E402
from tiny_cats.training.calibration import classification_metrics, fit_temperature  # noqa: E402
from tiny_cats.training.checkpoints import fix_file_modes  # noqa: E402


def average_state_dicts(state_dicts: list) -> dict:
    """The mean of every floating-point tensor; other tensors (BatchNorm's batch counters) from the first."""
    first = state_dicts[0]
    for other in state_dicts[1:]:
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise SystemExit("error: the ingredients have different weight names or shapes: they are not one architecture")
    return {key: torch.stack([sd[key].float() for sd in state_dicts]).mean(0).to(tensor.dtype)
            if tensor.is_floating_point() else tensor.clone() for key, tensor in first.items()}


def read_results(model_dir: str) -> dict:
    path = Path(model_dir) / "training_results.json"
    if not path.is_file():
        raise SystemExit(f"error: no {path}: a soup needs each ingredient's training time and validation split")
    results = json.loads(path.read_text())
    if "train_seconds" not in results:  # runs from before the checkpoints kept the clock: a resume lost its start
        raise SystemExit(f"error: {path} has no whole-run train_seconds (a run from before the clock was kept): "
                         "the soup's training time would be undercounted")
    return results


def config_differences(config: dict, first: dict) -> dict:
    """The training options in which ``config`` differs from ``first`` (local paths left out)."""
    return {key: config.get(key) for key in sorted(config.keys() | first.keys())
            if key not in PRIVATE_CONFIG_KEYS and config.get(key) != first.get(key)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("ingredients", nargs="+", help="saved classifier folders (the first gives config and processor)")
    parser.add_argument("--output", required=True, help="folder for the soup (must not exist yet)")
    parser.add_argument("--data", default=None, help="Oxford-IIIT Pet folder (default: the usual places)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if len(args.ingredients) < 2:
        parser.error("a soup needs at least two ingredients")
    output = Path(args.output)
    if output.exists():
        raise SystemExit(f"error: {output} exists already: remove it or choose another --output")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [read_results(d) for d in args.ingredients]
    splits = {validation_split_of(r["config"]) for r in results}
    if len(splits) == 1 and not next(iter(splits))[0]:
        raise SystemExit("error: the ingredients held out no validation photos: there is nothing to fit the "
                         "temperature on (train them with --validation_fraction)")
    if len(splits) != 1 or None in next(iter(splits)):
        raise SystemExit(f"error: the ingredients held out different validation photos {sorted(map(str, splits))}: "
                         "the temperature would be fitted on photos some of them trained on")
    data = args.data or default_data_dir()
    if data is None:
        raise SystemExit("error: no Oxford-IIIT Pet folder found: pass --data or set TINY_CATS_DATA")

    model = TinyCatsForImageClassification.from_pretrained(args.ingredients[0])
    processor = TinyCatsImageProcessor.from_pretrained(args.ingredients[0])
    state_dicts = [model.state_dict()] + [TinyCatsForImageClassification.from_pretrained(d).state_dict()
                                          for d in args.ingredients[1:]]
    model.load_state_dict(average_state_dicts(state_dicts))

    _, validation = split_validation(load_pets(data)["train"], *next(iter(splits)))
    logits = {flip: logits_and_labels(model, processor, validation, flip, args.batch_size) for flip in (False, True)}
    temperature = fit_temperature(*logits[model.config.test_time_flip])
    metrics = {("flip_on" if flip else "flip_off"): classification_metrics(out, labels, OTHER_ID, temperature)
               for flip, (out, labels) in logits.items()}
    model.config.temperature = temperature
    report = {"soup_of": [{"model": str(d), "steps": r["steps"], "train_seconds": r["train_seconds"],
                           "config_differences": config_differences(r["config"], results[0]["config"])}
                          for d, r in zip(args.ingredients, results)],
              "steps": sum(r["steps"] for r in results),
              "train_seconds": round(sum(r["train_seconds"] for r in results), 1),
              "num_train_images": results[0]["num_train_images"], "temperature": temperature,
              "validation": metrics, "config": {**results[0]["config"], "output_dir": str(output)}}

    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.with_name(f".{output.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)  # left by a run that was killed
    scratch.mkdir()
    try:  # written whole, then moved into place: no half-written soup
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
        (scratch / "training_results.json").write_text(json.dumps(report, indent=2) + "\n")
        fix_file_modes(scratch)
        scratch.rename(output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shipped = metrics["flip_on" if model.config.test_time_flip else "flip_off"]
    print(f"wrote {output}: validation accuracy {shipped['accuracy']:.4f}, calibrated NLL "
          f"{shipped['nll_calibrated']:.4f}, temperature {temperature:.3f}, training {report['train_seconds'] / 60:.1f} min")
    return report


if __name__ == "__main__":
    main()
