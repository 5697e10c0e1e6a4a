"""Out-of-fold scores of classifier recipes (10-fold cross-validation), small enough to commit.

    python training/crossval_classifier.py score RUN_DIR --recipe NAME   # -> benchmarks/classifier_crossval/NAME/fold_F.json
    python training/crossval_classifier.py report CANDIDATE BASELINE      # pool the folds both recipes scored, pair the photos
    python training/crossval_classifier.py report CANDIDATE BASELINE --folds 1 2 3  # only those folds

A recipe's run on fold F is ``train_classifier.py`` with ``--validation_fraction 0.1 --validation_fold F``
(fold 0 is the usual split, so the bundled model and the ablation rows are fold 0 of their recipes), or
a soup of such runs (training/soup_classifiers.py). ``score`` writes the temperature-1 logits of the fold's
held-out photos, flip on, with their file names and labels: about 40 KB per fold, committed, so the
evidence outlives the machine the 14 MB runs stay on. ``report`` pools the folds both recipes scored
(every training photo once, when all ten are in): one temperature per recipe refitted on its pooled
logits, accuracy, cat-vs-not errors, and a paired bootstrap over the photos, as compare_classifiers.py
does on one split. 245 photos without a single cat-vs-not error cannot rank recipes on that target;
2,449 can begin to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_classifiers import bootstrapped_loss, compare, logits_and_labels, scores_of_logits  # noqa: E402

from tiny_cats import TinyCatsForImageClassification, TinyCatsImageProcessor  # noqa: E402
from tiny_cats.data import default_data_dir, load_pets, split_validation, validation_split_of  # noqa: E402
from tiny_cats.files import write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "classifier_crossval"


def cmd_score(args) -> Path:
    path = Path(args.run) / "training_results.json"
    if not path.is_file():
        raise SystemExit(f"error: no {path}: score a saved run's final/ folder (or a soup's folder)")
    results = json.loads(path.read_text())
    fraction, seed, fold = validation_split_of(results["config"])
    if not fraction:
        raise SystemExit(f"error: {args.run} held out no validation photos: it has no fold to score")
    data = args.data or default_data_dir()
    if data is None:
        raise SystemExit("error: no Oxford-IIIT Pet folder found: pass --data or set TINY_CATS_DATA")
    _, held = split_validation(load_pets(data)["train"], fraction, seed, fold)
    model = TinyCatsForImageClassification.from_pretrained(args.run)
    processor = TinyCatsImageProcessor.from_pretrained(args.run)
    logits, labels = logits_and_labels(model, processor, held, True, args.batch_size)
    doc = {"recipe": args.recipe, "fold": fold, "validation_fraction": fraction, "validation_seed": seed,
           "test_time_flip": True, "train_seconds": results.get("train_seconds"), "run": str(args.run),
           "files": list(held["file"]), "labels": labels.tolist(),
           "logits": [[round(v, 4) for v in row] for row in logits.tolist()]}
    out = (Path(args.output) if args.output else OUT) / args.recipe / f"fold_{fold}.json"
    write_text(json.dumps(doc, separators=(",", ":")) + "\n", out)
    print(f"wrote {out}: {len(labels)} photos of fold {fold}, accuracy "
          f"{(logits.argmax(-1) == labels).float().mean().item():.4f}")
    return out


def pooled(folder: Path, folds) -> dict:
    docs = [json.loads((folder / f"fold_{f}.json").read_text()) for f in folds]
    for fold, doc in zip(folds, docs):
        if doc.get("fold") != fold:
            raise SystemExit(f"error: {folder / f'fold_{fold}.json'} holds fold {doc.get('fold')}, not {fold}")
    return {"files": [name for d in docs for name in d["files"]],
            "logits": torch.tensor([row for d in docs for row in d["logits"]]),
            "labels": torch.tensor([y for d in docs for y in d["labels"]]),
            "train_seconds": [d["train_seconds"] for d in docs]}


def cmd_report(args) -> dict:
    root = Path(args.output) if args.output else OUT
    folders = [root / name for name in (args.candidate, args.baseline)]
    found = [{int(p.stem.split("_")[1]) for p in folder.glob("fold_*.json")} for folder in folders]
    folds = sorted(found[0] & found[1])
    if args.folds is not None:
        missing = sorted(set(args.folds) - set(folds))
        if missing:
            raise SystemExit(f"error: fold(s) {', '.join(map(str, missing))} not scored for both "
                             f"{args.candidate} and {args.baseline} under {root}")
        folds = sorted(set(args.folds))
    if not folds:
        raise SystemExit(f"error: no fold scored for both {args.candidate} and {args.baseline} under {root}")
    candidate, baseline = (pooled(folder, folds) for folder in folders)
    if candidate["files"] != baseline["files"]:
        raise SystemExit("error: the two recipes held out different photos on the same folds (another seed or fraction)")
    if len(set(candidate["files"])) != len(candidate["files"]):
        raise SystemExit("error: a photo is held out by two of the folds (folds of different splits?)")
    scores = [scores_of_logits(r["logits"], r["labels"]) for r in (candidate, baseline)]
    report = {"what": "pooled out-of-fold comparison (training/crossval_classifier.py)", "folds": folds,
              "photos": len(candidate["files"]), **compare(*scores, args.resamples),
              "cat_vs_not_errors": {
                  **bootstrapped_loss(*scores, "cat_vs_not_error_per_photo", args.resamples),
                  "candidate": int(scores[0]["cat_vs_not_error_per_photo"].sum()),
                  "baseline": int(scores[1]["cat_vs_not_error_per_photo"].sum()),
                  **{f"{name}_files": [f for f, wrong in zip(candidate["files"], score["cat_vs_not_error_per_photo"]) if wrong]
                     for name, score in zip(("candidate", "baseline"), scores)}}}
    for name, raw, score in zip(("candidate", "baseline"), (candidate, baseline), scores):
        report[name] = {"recipe": getattr(args, name), "train_seconds_per_fold": raw["train_seconds"],
                        **{k: v for k, v in score.items() if not k.endswith("_per_photo")}}
    print(json.dumps(report, indent=2))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="write one run's out-of-fold logits")
    score.add_argument("run", help="a saved classifier folder with its training_results.json")
    score.add_argument("--recipe", required=True, help="the recipe's name: the folder its folds are kept in")
    score.add_argument("--data", default=None, help="Oxford-IIIT Pet folder (default: the usual places)")
    score.add_argument("--batch_size", type=int, default=32)
    report = commands.add_parser("report", help="pool the folds two recipes share and compare them")
    report.add_argument("candidate")
    report.add_argument("baseline")
    report.add_argument("--resamples", type=int, default=10_000)
    report.add_argument("--folds", type=int, nargs="+", default=None,
                        help="pool only these folds (default: every fold both recipes have)")
    for sub in (score, report):
        sub.add_argument("--output", default=None, help=f"folder of the recipes' fold files (default {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    return cmd_score(args) if args.command == "score" else cmd_report(args)


if __name__ == "__main__":
    main()
