"""Ablation of the classifier's fine-tuning recipe: which choices earn their training time.

    python training/ablate_classifier.py run A_base B_no_smoothing ...   # train each, one after another
    python training/ablate_classifier.py report                           # -> benchmarks/classifier_ablation.json

Every variant is ``training/train_classifier.py`` with ``training/configs/classifier_ablation.yaml``
plus its own overrides, so each row of the table is one command anyone can rerun. Choices are
made on the validation split (10% of each label's training photos, seeded); the test split is
reported beside it but never used to choose. Every run reports accuracy and calibration with
test-time flip off and on, and the temperature fitted on validation, so TTA and calibration
need no runs of their own. Training time is stated as epochs and as measured wall-clock (this
CPU's speed varies between runs, and other jobs may share it: compare epochs, read seconds as
a rough cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tiny_cats.files import write_text

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "training" / "configs" / "classifier_ablation.yaml"
OUT = ROOT / "outputs" / "ablation_classifier"
REPORT = ROOT / "benchmarks" / "classifier_ablation.json"
# The bundled recipe's run (training/configs/classifier_cpu.yaml: the base + H_224_256 for 15 epochs,
# flip test-time augmentation on), reported as the table's last row when its output_dir holds
# final/training_results.json.
RECIPE = ROOT / "training" / "configs" / "classifier_cpu.yaml"

# One change from the base (5 epochs, 192 px train / 224 px test, basic augmentation, label
# smoothing 0.1, no EMA, backbone lr 3e-4 flat), then the longer runs of the combination.
VARIANTS = {
    "A_base": {},
    "B_no_smoothing": {"label_smoothing": 0.0},
    "C_advanced_aug": {"augmentation": "advanced"},
    "D_randaugment": {"augmentation": "randaugment"},
    "E_mixup_cutmix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0},
    "F_layer_decay": {"layer_decay": 0.7, "backbone_learning_rate": 1e-3},
    "G_ema": {"ema_decay": 0.995},
    "H_224_256": {"image_size": 224, "eval_image_size": 256},
    "I_backbone_lr_1e-3": {"backbone_learning_rate": 1e-3},
    "L_256_288": {"image_size": 256, "eval_image_size": 288},  # the resolution axis one step further
    # The epochs axis: strong augmentation and mixing regularise, so they may only pay in longer runs.
    "J_15_epochs": {"num_epochs": 15},
    "K_15_epochs_advanced_aug": {"num_epochs": 15, "augmentation": "advanced"},
    # The bundled recipe (H for 15 epochs) taken further along one axis each.
    "M_256_288_15_epochs": {"image_size": 256, "eval_image_size": 288, "num_epochs": 15},
    "N_224_256_30_epochs": {"image_size": 224, "eval_image_size": 256, "num_epochs": 30},
    "O_224_256_15_epochs_mixup_cutmix": {"image_size": 224, "eval_image_size": 256, "num_epochs": 15,
                                         "mixup_alpha": 0.2, "cutmix_alpha": 1.0},
    # Cat vs not is the target the bundled recipe misses (cats called `other`): weigh that yes/no question more.
    "P_224_256_15_epochs_cat_vs_not_loss": {"image_size": 224, "eval_image_size": 256, "num_epochs": 15,
                                            "cat_vs_not_weight": 1.0},
    # The bundled recipe again with another training seed (same validation photos): the run-to-run spread,
    # and the second ingredient of a weight average ("model soup", training/soup_classifiers.py).
    "Q_224_256_15_epochs_seed_1": {"image_size": 224, "eval_image_size": 256, "num_epochs": 15, "seed": 1},
}


def command(name: str, threads: int) -> list:
    overrides = [item for key, value in VARIANTS[name].items() for item in (f"--{key}", str(value))]
    return [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file",
            str(ROOT / "training" / "accelerate" / "cpu.yaml"), "--num_cpu_threads_per_process", str(threads),
            str(ROOT / "training" / "train_classifier.py"), "--config", str(BASE_CONFIG),
            "--output_dir", str(OUT / name), *overrides]


def cmd_run(args) -> None:
    for name in args.variants:
        if (OUT / name / "final" / "training_results.json").exists():
            if not args.force:
                print(f"{name}: done already (--force to rerun)")
                continue
            # Its checkpoints would be resumed (the last one ends the run at once): set the old run aside.
            aside = OUT / f"{name}.before-force"
            shutil.rmtree(aside, ignore_errors=True)
            (OUT / name).rename(aside)
            print(f"{name}: the finished run moved to {aside.relative_to(ROOT)}; training it again")
        cmd = command(name, args.threads)
        print(" ".join(cmd), flush=True)
        (OUT / name).mkdir(parents=True, exist_ok=True)
        with open(OUT / name / "train.log", "a") as log:
            resume = ["--resume_from_checkpoint", "latest"] if any((OUT / name).glob("checkpoint-*")) else []
            subprocess.run(cmd + resume,
                           check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())


def row(name: str, results: dict) -> dict:
    validation, test = results["validation"], results["test"]
    pick = lambda split, flip: {k: round(v, 4) if isinstance(v, float) else v for k, v in split[flip].items()}  # noqa: E731
    epochs = results["config"].get("num_epochs") or results["epochs"]
    overrides = VARIANTS.get(name, {"config": str(RECIPE.relative_to(ROOT))})
    return {"variant": name, "overrides": overrides, "epochs": epochs, "steps": results["steps"],
            "train_seconds": results.get("train_seconds", results["train_seconds_this_run"]),
            # runs from before the checkpoints kept the clock: a resumed one misses its earlier part
            "train_seconds_cover": "whole run" if "train_seconds" in results else "its last process only",
            "temperature": round(results["temperature"], 3),
            "validation": {"flip_off": pick(validation, "flip_off"), "flip_on": pick(validation, "flip_on")},
            "test": {"flip_off": pick(test, "flip_off"), "flip_on": pick(test, "flip_on")}}


def report_rows() -> list:
    """A row per run found under outputs/, and the committed table's rows of the runs that are not (a new
    machine starts with an empty outputs/, and its report must not drop rows it cannot rerun cheaply)."""
    runs = {name: OUT / name / "final" / "training_results.json" for name in VARIANTS}
    runs["bundled_recipe"] = ROOT / yaml.safe_load(RECIPE.read_text())["output_dir"] / "final" / "training_results.json"
    committed = json.loads(REPORT.read_text())["runs"] if REPORT.exists() else []
    rows = {r["variant"]: r for r in committed}
    rows.update({name: row(name, json.loads(path.read_text())) for name, path in runs.items() if path.exists()})
    kept = [name for name in rows if not runs.get(name, Path()).is_file()]
    if kept:
        print(f"kept from {REPORT.relative_to(ROOT)} (no run under outputs/ on this machine): {', '.join(kept)}")
    order = list(runs)
    return sorted(rows.values(), key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order))


def cmd_report(args) -> None:
    rows = report_rows()
    doc = {"what": "classifier recipe ablation (training/ablate_classifier.py), chosen on validation",
           "base_config": str(BASE_CONFIG.relative_to(ROOT)), "runs": rows}
    write_text(json.dumps(doc, indent=2) + "\n", REPORT)
    print(f"{'variant':22s} {'ep':>3s} {'min':>5s} {'T':>5s} | {'val acc':>7s} {'+flip':>6s} {'ECE_T':>6s} | "
          f"{'test acc':>8s} {'+flip':>6s} {'cat/not':>7s} {'breeds':>6s} {'ECE':>6s} {'ECE_T':>6s}")
    for r in rows:
        v, vf, t, tf = r["validation"]["flip_off"], r["validation"]["flip_on"], r["test"]["flip_off"], r["test"]["flip_on"]
        print(f"{r['variant']:22s} {r['epochs']:3d} {r['train_seconds'] / 60:5.1f} {r['temperature']:5.2f} | "
              f"{v['accuracy']:7.4f} {vf['accuracy']:6.4f} {v['ece_calibrated']:6.4f} | {t['accuracy']:8.4f} "
              f"{tf['accuracy']:6.4f} {t.get('cat_vs_not_cat_accuracy', float('nan')):7.4f} "
              f"{t['cat_breed_accuracy']:6.4f} {t['ece']:6.4f} {t['ece_calibrated']:6.4f}")
    print(f"wrote {REPORT.relative_to(ROOT)}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("variants", nargs="*", help=f"default: all of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1: another job keeps a core)")
    parser.add_argument("--force", action="store_true", help="train variants that already finished again, from scratch")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    args.variants = args.variants or list(VARIANTS)
    {"run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
