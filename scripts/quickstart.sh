#!/usr/bin/env bash
# The main job: set up, then train a spiking actor (Proxy Target TD3, LIF neurons) on InvertedPendulum-v5 until
# every episode of an evaluation of 10 deterministic episodes balances for the full 1000 steps (preset `quickstart`,
# at most 20k steps), export it as a bundle, evaluate the bundle on the torch-free runtime over the same 10 episodes,
# and print a summary. Exits 1 when either return is below 950.
#
#   bash scripts/quickstart.sh [SEED]          # SEED defaults to 0
#
# Environment: QUICKSTART_RUN_DIR (default runs/quickstart; replaced on every run), SPIKERL_NUM_THREADS (torch
# threads, default 1: a second thread helps large networks on an idle machine, but on a busy one it slows training
# down many times), QUICKSTART_SET (extra `--set` overrides, e.g. for a smoke test), QUICKSTART_SETUP=0 (skip
# scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:-0}
RUN_DIR=${QUICKSTART_RUN_DIR:-runs/quickstart}
THREADS=${SPIKERL_NUM_THREADS:-1}
MIN_RETURN=950
EPISODES=10
export MUJOCO_GL=${MUJOCO_GL:-egl}

if [ "${QUICKSTART_SETUP:-1}" != 0 ]; then
  bash scripts/setup.sh
fi
SPIKERL=.venv/bin/spikerl
# shellcheck disable=SC2206  # QUICKSTART_SET is a list of KEY=VALUE words
EXTRA=(${QUICKSTART_SET:-})

SECONDS=0
"$SPIKERL" train quickstart --seed "$SEED" --run-dir "$RUN_DIR" --overwrite --threads "$THREADS" \
  ${EXTRA[@]+--set "${EXTRA[@]}"}
"$SPIKERL" export "$RUN_DIR" --format bundle
"$SPIKERL" evaluate "$RUN_DIR/bundle" --episodes "$EPISODES" --quiet
.venv/bin/python scripts/quickstart_summary.py "$RUN_DIR" --wall-s "$SECONDS" --min-return "$MIN_RETURN"
