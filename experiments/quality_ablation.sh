#!/usr/bin/env bash
# Ablation on a fixed 8-task subset at equal training tokens (docs/quality.md). Resumable: each
# stage is skipped when its output exists.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl SDL_VIDEODRIVER=dummy
G=.venv/bin/gato
R=${OUT:-runs/ablation}
mkdir -p $R
TASKS="control/pendulum dmc/cartpole-balance dmc/point_mass-easy mujoco/inverted-pendulum mujoco/inverted-double-pendulum mujoco/reacher metaworld/reach babyai/GoToLocal"
[ -f $R/clean/.done ] || { $G collect $TASKS --episodes 50 --out $R/clean --no-progress > $R/collect-clean.log; touch $R/clean/.done; }
[ -f $R/noisy/.done ] || { $G collect $TASKS --episodes 50 --noise auto --out $R/noisy --no-progress > $R/collect-noisy.log; touch $R/noisy/.done; }
A="--steps 500 --batch-size 8 --context 256 --warmup 50 --checkpoint-every 50 --no-progress --seed 0"
train() { # name data extra...
  local name=$1 data=$2; shift 2
  [ -f $R/$name/step_00000500/config.json ] || $G train --data $R/$data --out $R/$name $A "$@" --resume > $R/$name.log 2>&1
}
train A-clean clean
train B-noise noisy
train C-noise-start-balance noisy --start-prob 0.2 --task-balance 0.25
train D-noise-start-balance-hlgauss noisy --start-prob 0.2 --task-balance 0.25 --target-sigma 2 --keep-checkpoints 20 \
    --eval-every 100 --eval-episodes 3 --eval-tasks mujoco/inverted-pendulum dmc/cartpole-balance mujoco/reacher babyai/GoToLocal
# E: D's weights at step 350, then one DAgger round of 150 steps (equal tokens to D at 500).
[ -d $R/noisy-dagger ] || cp -r $R/noisy $R/noisy-dagger
[ -f $R/E-dagger/round-1/step_00000150/config.json ] || $G dagger $R/D-noise-start-balance-hlgauss/step_00000350 \
    --data $R/noisy-dagger --rounds 1 --episodes 8 --steps 150 --out $R/E-dagger --no-progress > $R/E-dagger.log 2>&1
for spec in A-clean:clean B-noise:noisy C-noise-start-balance:noisy D-noise-start-balance-hlgauss:noisy E-dagger/round-1:noisy; do
  m=${spec%%:*}; data=${spec##*:}; out=$R/eval-${m//\//-}
  [ -f $out/results.json ] || $G eval $R/$m --tasks $TASKS --episodes 10 --envs 10 --data $R/$data --out $out --videos 0 --no-vl > $out.log 2>&1
done
echo done
