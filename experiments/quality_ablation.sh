#!/usr/bin/env bash
# The levers' ablation (docs/quality.md, "The ablation"): a fixed 8-task subset, every run
# trained on the same number of tokens, each run adding one lever to the one before it:
#   A clean demonstrations; B noise-injected ones (DART); C + episode-start windows and task
#   balance; D + Gaussian-histogram targets with median decoding; E D's weights at 3/4 of the
#   steps, then one DAgger round for the last quarter; F D's recipe on 4 times the demonstrations.
# Two runs train side by side on one thread each, then the six evaluations run two at a time.
# 58 minutes on a 2-core AMD EPYC (2026-12-02; the table in docs/quality.md).
# Resumable: rerun after a kill; a finished stage is skipped and training resumes. Sizes come from
# the environment, e.g. a smoke run: OUT=runs/ab-smoke STEPS=8 EPISODES=6 MORE=7 ROLLOUTS=1 \
#   EVAL_EPISODES=1 bash experiments/quality_ablation.sh
# (with fewer episodes, all of Reacher's noisy ones can fall below the return filter).
# Another training seed on the same data: copy clean/, noisy/ and noisy-more/ (with their .done)
# into a new OUT and run with SEED=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl SDL_VIDEODRIVER=dummy OMP_NUM_THREADS=1
G=.venv/bin/gato
R=${OUT:-runs/ablation}
STEPS=${STEPS:-1600}
EPISODES=${EPISODES:-50}
MORE=${MORE:-200}
ROLLOUTS=${ROLLOUTS:-8}
EVAL_EPISODES=${EVAL_EPISODES:-20}
SEED=${SEED:-0}  # training seed; the data and the evaluation seeds stay the same
TASKS="control/pendulum dmc/cartpole-balance dmc/point_mass-easy mujoco/inverted-pendulum
    mujoco/inverted-double-pendulum mujoco/reacher metaworld/reach babyai/GoToLocal"
mkdir -p "$R"

collect() { # name episodes extra...
  local name=$1 n=$2; shift 2
  [ -f "$R/$name/.done" ] && return 0
  # shellcheck disable=SC2086  # TASKS is a list
  $G collect $TASKS --episodes "$n" --workers 2 --out "$R/$name" --no-progress "$@" \
      > "$R/collect-$name.log" 2>&1
  touch "$R/$name/.done"
}
collect clean "$EPISODES"
collect noisy "$EPISODES" --noise auto
collect noisy-more "$MORE" --noise auto

A="--steps $STEPS --batch-size 8 --context 256 --warmup $((STEPS / 10))
   --checkpoint-every $((STEPS / 8)) --keep-checkpoints 20 --no-progress --seed $SEED"
LEVERS="--start-prob 0.2 --task-balance 0.25"
train() { # name data extra...: train unless the last step's checkpoint exists
  local name=$1 data=$2; shift 2
  [ -f "$R/$name/step_$(printf %08d "$STEPS")/config.json" ] && return 0
  # shellcheck disable=SC2086  # A is a list of options
  $G train --data "$R/$data" --out "$R/$name" $A "$@" --resume > "$R/$name.log" 2>&1
}
dagger() { # E: D's checkpoint at 3/4 of the steps, one round of the last quarter
  local start
  start=$R/D/step_$(printf %08d $((STEPS * 3 / 4)))
  [ -d "$R/noisy-dagger" ] || cp -r "$R/noisy" "$R/noisy-dagger"
  [ -f "$R/E/round-1/step_$(printf %08d $((STEPS / 4)))/config.json" ] \
      && return 0
  # shellcheck disable=SC2086
  $G dagger "$start" --data "$R/noisy-dagger" --tasks $TASKS --rounds 1 --episodes "$ROLLOUTS" \
      --envs "$ROLLOUTS" --steps $((STEPS / 4)) --out "$R/E" --no-progress > "$R/E.log" 2>&1
}
{ train A clean & p=$!; train B noisy; wait $p; }
# shellcheck disable=SC2086  # LEVERS is a list of options
{ train C noisy $LEVERS & p=$!; train D noisy $LEVERS --target-sigma 2; wait $p; }
# shellcheck disable=SC2086
{ dagger & p=$!; train F noisy-more $LEVERS --target-sigma 2; wait $p; }

evaluate() { # model data
  local out=$R/eval-${1//\//-}
  [ -f "$out/results.json" ] && return 0
  # shellcheck disable=SC2086
  $G eval "$R/$1" --tasks $TASKS --episodes "$EVAL_EPISODES" --envs "$EVAL_EPISODES" \
      --data "$R/$2" --out "$out" --videos 0 --no-vl --no-progress > "$out.log" 2>&1
}
{ evaluate A clean & p=$!; evaluate B noisy; wait $p; }
{ evaluate C noisy & p=$!; evaluate D noisy; wait $p; }
{ evaluate E/round-1 noisy-dagger & p=$!; evaluate F noisy-more; wait $p; }
echo done
