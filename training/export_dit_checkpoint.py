"""Write a training checkpoint's EMA weights as a ``TinyDiTPipeline`` folder, while the run goes on.

A long run only writes ``final/`` when it ends; this turns any ``checkpoint-N`` (or ``latest``)
into the same pipeline folder, so it can be evaluated, swept or bundled mid-run:

    .venv/bin/python training/export_dit_checkpoint.py --config training/configs/dit_release_cpu.yaml \
        --checkpoint latest --output outputs/dit_release/ema-latest

The model is built from the run's config (``--sample_size`` etc. may be given after the config),
the EMA state is read from the checkpoint, and the folder is written to a temporary name first,
so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_dit import DiTTrainingConfig, build_model, build_pipeline  # noqa: E402

from tiny_cats import layout  # noqa: E402
from tiny_cats.files import staged_folder  # noqa: E402
from tiny_cats.training.checkpoints import checkpoint_step, fix_file_modes, resolve_resume  # noqa: E402
from tiny_cats.training.config import parse_config  # noqa: E402


def export(cfg: DiTTrainingConfig, checkpoint: str, output: Path) -> int:
    """Write the EMA pipeline of ``checkpoint`` (a path, a name in ``cfg.output_dir`` or "latest") to ``output``."""
    output = Path(output).resolve()
    if output.exists() and not (output / "model_index.json").is_file() and (not output.is_dir() or any(output.iterdir())):
        # replacing it would delete what it holds: a run's checkpoints, the bundled models, the checkout
        raise SystemExit(f"error: {output} exists and is not a pipeline folder; refusing to replace it")
    if checkpoint == "latest":
        folder = resolve_resume(cfg.output_dir, "latest")
    else:
        folder = next((p for p in (Path(checkpoint), Path(cfg.output_dir) / checkpoint) if p.is_dir()), None)
    if folder is None or not (folder / "custom_checkpoint_0.pkl").is_file():
        raise SystemExit(f"error: no checkpoint with an EMA state at {checkpoint!r} (output_dir {cfg.output_dir})")
    try:
        step = checkpoint_step(folder)
    except ValueError as err:  # a folder not named checkpoint-STEP
        raise SystemExit(f"error: {err}") from None
    model = build_model(cfg)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    ema.load_state_dict(torch.load(folder / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=False))
    ema.copy_to(model.parameters())
    with staged_folder(output) as stage:
        build_pipeline(model.eval(), cfg.scheduler_shift).save_pretrained(stage)
        # As the run's own final/ has it: evaluate-generator reads the training photos (memorisation check) from here.
        report = {"steps": step, "exported_from": str(folder), "weights": "EMA", "config": dataclasses.asdict(cfg)}
        (stage / layout.TRAINING_RESULTS).write_text(json.dumps(report, indent=2) + "\n")
        fix_file_modes(stage)
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="the run's YAML config")
    parser.add_argument("--checkpoint", default="latest", help="checkpoint-N folder, its path, or 'latest'")
    parser.add_argument("--output", required=True, type=Path, help="pipeline folder to write")
    args, overrides = parser.parse_known_args(argv)
    try:
        cfg = parse_config(DiTTrainingConfig, ["--config", args.config, *overrides])
    except (FileNotFoundError, ValueError) as err:  # the config file: missing, not YAML, a bad key or value
        raise SystemExit(f"error: {err}") from None
    step = export(cfg, args.checkpoint, args.output)
    print(f"wrote the EMA weights of step {step} to {args.output}")


if __name__ == "__main__":
    main()
