#!/usr/bin/env bash
# TinyDiT's quick GPU run in one command:   bash training/gpu_quick.sh [MINUTES]      (default 8)
#
# 1. Packs every cat photo of $DATA (default ../shared/data/oxford-iiit-pet) at 32 and 64 px into
#    outputs/packed/*.npz (6.2 + 24.8 MB, git-ignored, never committed) unless they are there: a
#    GPU machine without the photos gets these two files carried instead (under 40 MB).
# 2. Trains training/configs/dit_gpu_quick.yaml in bf16 on one GPU for MINUTES of wall-clock,
#    writing checkpoints and sample grids to outputs/dit_gpu_quick/ as it goes and the EMA
#    pipeline to outputs/dit_gpu_quick/final/. Run it again to continue (it resumes from the
#    latest checkpoint).
#
# CPU check of the same path (4 steps, tiny batch):   GPU_QUICK_CPU_CHECK=1 bash training/gpu_quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-8}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
DATA="${DATA:-../shared/data/oxford-iiit-pet}"
"$PY" -c "import accelerate, diffusers, transformers, datasets, kornia, tiny_cats" 2>/dev/null || {
  echo "gpu_quick.sh: $PY cannot import tiny-cats and its dependencies; run 'pip install -e .' (or carry the wheels)" >&2
  exit 1
}
for side in 32 64; do
  if [ ! -f "outputs/packed/cats_train+test-holdout10_${side}px.npz" ]; then
    [ -d "$DATA" ] || { echo "gpu_quick.sh: no outputs/packed/cats_train+test-holdout10_${side}px.npz and no photos at $DATA" >&2; exit 1; }
    "$PY" -c "from tiny_cats.data import packed_cats_file as p; print('packed', p('$DATA', $side, holdout_per_breed=10))"
  fi
done
if [ -n "${GPU_QUICK_CPU_CHECK:-}" ]; then
  LAUNCH=(--cpu --num_cpu_threads_per_process 2)
  EXTRA=(--output_dir outputs/dit_gpu_quick_cpu_check --max_train_steps 4 --train_batch_size 8
         --resolution_schedule "32@0,64@2" --checkpointing_steps 2 --sample_every_steps 4 --sample_inference_steps 2)
else
  LAUNCH=(--mixed_precision bf16)
  EXTRA=(--max_train_minutes "$MINUTES")
fi
exec "$PY" -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no "${LAUNCH[@]}" \
  training/train_dit.py --config training/configs/dit_gpu_quick.yaml --data "$DATA" \
  --resume_from_checkpoint latest "${EXTRA[@]}"
