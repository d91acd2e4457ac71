#!/usr/bin/env bash
# Prompts matched by mission (docs/quality.md, "Prompts that carry the mission"): does a BabyAI
# prompt drawn from a demonstration of the episode's own mission teach the shipped gato-tiny to go
# where the mission says? An A/B from the shipped checkpoint on the six core BabyAI levels: two
# fine-tunings that differ only in `--prompt-match`, trained side by side on one core each (same
# data, seed, steps; every window prompted, as evaluation is), then each evaluated on the six levels
# with the prompts it trained with, 50 episodes a level, and paired by reset seed (`gato compare`).
#
# Resumable: rerun after a kill; a stage whose marker exists is skipped, and training resumes from
# its newest checkpoint. DATA: a dataset root that already holds the six levels (e.g. round 17's,
# runs/r17/data, which also holds its decoy and DAgger episodes); without it the levels are
# collected into $OUT/data first (2000 demonstrations a level, 50,000 decoys for PickupDist and
# GoToLocal: about 15 minutes of two cores). Sizes come from the environment, e.g. a smoke run:
#   OUT=runs/pm-smoke EPISODES=4 DECOYS=4 STEPS=2 EVAL_EPISODES=1 bash experiments/prompt_match.sh
# Ran 2026-12-03 with DATA=runs/r17/data on a 2-core AMD EPYC Zen 4: training 52 minutes, each
# evaluation 5; no level moved beyond its interval (docs/quality.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl SDL_VIDEODRIVER=dummy
G=.venv/bin/gato
R=${OUT:-runs/prompt-match}
D=${DATA:-$R/data}
EPISODES=${EPISODES:-2000}
DECOYS=${DECOYS:-50000}
STEPS=${STEPS:-1100}
EVAL_EPISODES=${EVAL_EPISODES:-50}
LEVELS="babyai/GoToRedBallNoDists babyai/GoToRedBall babyai/GoToObj babyai/GoToLocal babyai/OpenRedDoor babyai/PickupDist"
mkdir -p "$R"

# shellcheck source=experiments/stage.sh
. experiments/stage.sh

if [ -z "${DATA:-}" ]; then
  # shellcheck disable=SC2086  # LEVELS is a list
  stage demos $G collect $LEVELS --episodes "$EPISODES" --test-episodes 5 --noise 0.1 --workers 2 --out "$D" \
      --no-progress
  stage decoys $G collect babyai/PickupDist babyai/GoToLocal --decoy 0.5 --episodes "$DECOYS" --workers 2 \
      --out "$D" --no-progress
fi

fine_tune() { # out [flags]: the shipped checkpoint fine-tuned on the six levels, on one core
  local out=$1; shift
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $G train --recipe gato-tiny --preset gato-tiny-deep --init checkpoints/gato-tiny --data "$D" \
      --tasks $LEVELS --vl-weight 0 --lr 3e-4 --steps "$STEPS" --warmup 40 --prompt-prob 1 \
      --task-weights babyai/PickupDist=4 babyai/GoToLocal=4 --resume --out "$out" --no-progress "$@"
}
if [ ! -f "$R/.train.done" ]; then
  echo "$(date -u +%H:%M:%S) train"
  fine_tune "$R/matched" --prompt-match True >> "$R/matched.log" 2>&1 &
  fine_tune "$R/plain" >> "$R/plain.log" 2>&1 &
  wait -n && wait -n  # both must succeed
  touch "$R/.train.done"
fi
# shellcheck disable=SC2086
stage eval-matched $G eval "$R/matched" --tasks $LEVELS --episodes "$EVAL_EPISODES" --data "$D" --prompt-match \
    --no-vl --videos 0 --workers 2 --out "$R/eval-matched" --no-progress
# shellcheck disable=SC2086
stage eval-plain $G eval "$R/plain" --tasks $LEVELS --episodes "$EVAL_EPISODES" --data "$D" \
    --no-vl --videos 0 --workers 2 --out "$R/eval-plain" --no-progress
stage compare $G compare "$R/eval-plain" "$R/eval-matched" --out "$R/compare.md" --force
cat "$R/compare.md"
