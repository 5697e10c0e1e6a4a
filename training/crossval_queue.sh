#!/usr/bin/env bash
# The cross-validation of issue 12 (benchmarks/classifier_decision_rules.md, 2026-12-04 06:10): for each fold
# given, the bundled recipe and row P's recipe trained side by side with one torch thread each (two runs on
# two cores finish sooner than one after the other on both), then their soup and the three scores written
# to benchmarks/classifier_crossval/. Finished runs are skipped and unfinished ones resume from their latest
# checkpoint, so the same command picks up after a stop. Runs skip the test split they never use.
#
#   nohup training/crossval_queue.sh 7 8 9 > outputs/crossval/queue.out 2>&1 &
#   .venv/bin/python training/crossval_classifier.py report bundled_plus_P_soup bundled_recipe
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: training/crossval_queue.sh FOLD [FOLD ...]  (folds 0-9)" >&2; exit 2; }
for F in "$@"; do
  [[ $F =~ ^[0-9]$ ]] || { echo "crossval_queue.sh: error: fold must be 0-9, got '$F'" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
mkdir -p outputs/crossval
THREADS=${THREADS:-1}
LAUNCH=(.venv/bin/accelerate launch --quiet --config_file training/accelerate/cpu.yaml --num_cpu_threads_per_process "$THREADS" training/train_classifier.py)
run() {  # run OUTPUT_DIR ARGS...: train unless OUTPUT_DIR/final exists; resume from its checkpoints if any
  local out=$1; shift
  [ -e "$out/final/training_results.json" ] && return 0
  local resume=()
  compgen -G "$out/checkpoint-*" > /dev/null && resume=(--resume_from_checkpoint latest)
  "${LAUNCH[@]}" "$@" --evaluate_test false --output_dir "$out" "${resume[@]}"
}
for F in "$@"; do
  B=outputs/crossval/bundled_recipe/fold_$F P=outputs/crossval/P_recipe/fold_$F S=outputs/crossval/soup/fold_$F
  echo "fold $F start $(date -u +%H:%M)"
  run "$B" --config training/configs/classifier_cpu.yaml --validation_fold "$F" > "outputs/crossval/bundled_$F.log" 2>&1 &
  b=$!
  run "$P" --config training/configs/classifier_ablation.yaml --image_size 224 --eval_image_size 256 \
      --num_epochs 15 --cat_vs_not_weight 1.0 --validation_fold "$F" > "outputs/crossval/P_$F.log" 2>&1 &
  p=$!
  rb=0; wait $b || rb=$?; rp=0; wait $p || rp=$?
  [ $rb = 0 ] && [ $rp = 0 ] || { echo "fold $F: a run failed (bundled $rb, P $rp)"; exit 1; }
  [ -e "$S/model.safetensors" ] || .venv/bin/python training/soup_classifiers.py "$B/final" "$P/final" --output "$S" --threads 2
  .venv/bin/python training/crossval_classifier.py score "$B/final" --recipe bundled_recipe >> outputs/crossval/score.log 2>&1
  .venv/bin/python training/crossval_classifier.py score "$P/final" --recipe P_recipe >> outputs/crossval/score.log 2>&1
  .venv/bin/python training/crossval_classifier.py score "$S" --recipe bundled_plus_P_soup >> outputs/crossval/score.log 2>&1
  echo "fold $F done $(date -u +%H:%M)" | tee -a outputs/crossval/score.log
done
