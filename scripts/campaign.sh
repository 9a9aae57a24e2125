#!/usr/bin/env bash
# The training campaign: Hopper-v5 and HalfCheetah-v5 x td3-proxy-lif, td3-ann, td3-lif x seeds 0-1 at 150k steps,
# the paper's settings, a checkpoint every 10k steps. (The plan was seeds 0-2 at 300k; the campaign folder was lost
# at two session starts in a row, so, as issue #16 asks, the plan shrank to 150k steps and 2 seeds. Seed 0 finished
# at 300k before that and is kept. CAMPAIGN_STEPS=300000 CAMPAIGN_LATER_SEEDS=1-2 restores the full plan.)
# Re-run the same command to resume: finished trials are skipped, interrupted ones resume from their last checkpoint.
#
#   bash scripts/campaign.sh            # start or resume, in the background is fine: nohup bash ... &
#   bash scripts/campaign.sh --status   # one line per trial: steps reached, last return
#   bash scripts/campaign.sh --stop     # stop it: each running trial checkpoints the step it reached, then exits
#
# The campaign runs from its own copy of the code (CAMPAIGN/code, a clone of this checkout's HEAD taken when it
# starts, with its own .venv), so editing the checkout does not change a running campaign. Two lanes, one per env,
# each one trial at a time (one core each), in the order of priority: td3-proxy-lif and td3-ann with seed 0,
# then td3-lif with seed 0, then all three with each later seed (td3-ann and td3-lif first: they are quick). A
# trial that benchmarks/campaign.json records as completed is not trained again, even when the folder lost it (the
# report carries it over).
#
# Environment: SPIKERL_CAMPAIGN (default ~/spikerl-campaign), CAMPAIGN_STEPS (150000),
# CAMPAIGN_LATER_SEEDS (1).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
campaign=${SPIKERL_CAMPAIGN:-$HOME/spikerl-campaign}
steps=${CAMPAIGN_STEPS:-150000}
later_seeds=${CAMPAIGN_LATER_SEEDS:-1}
envs=(Hopper-v5 HalfCheetah-v5)
code=$campaign/code

if [ "${1:-}" = "--status" ]; then
  for f in "$campaign"/lanes/*/*/*/s*/progress.json; do
    [ -f "$f" ] && echo "${f#"$campaign"/lanes/}: $(tr -d '\n' < "$f")"
  done
  exit 0
fi

if [ "${1:-}" = "--stop" ]; then
  # the lanes first (so that no later phase starts), then SIGTERM to the sweeps: each passes SIGINT to its trainer,
  # which writes a checkpoint of the step it reached and exits; wait for them (the sweeps kill a trainer after 20 s)
  main=$(cat "$campaign/campaign.pid" 2>/dev/null || true)
  if [ -n "$main" ] && kill -0 "$main" 2>/dev/null; then
    pkill -TERM -P "$main" -x bash || true
    kill -TERM "$main" 2>/dev/null || true
  fi
  pkill -TERM -f "spikerl sweep .*--out $campaign/lanes/" || true
  for _ in $(seq 60); do
    pgrep -f "spikerl (sweep|train).*$campaign/lanes/" > /dev/null || { echo "[campaign] stopped"; exit 0; }
    sleep 1
  done
  echo "[campaign] still running after 60 s: $(pgrep -f "spikerl (sweep|train).*$campaign/lanes/" | tr '\n' ' ')" >&2
  exit 1
fi

mkdir -p "$campaign/lanes"
echo $$ > "$campaign/campaign.pid"
if [ ! -d "$code/.git" ]; then
  git clone -q "$repo" "$code"
fi
git -C "$code" fetch -q "$repo" HEAD
git -C "$code" checkout -q --detach FETCH_HEAD
echo "[campaign] code at $(git -C "$code" log -1 --format='%h %s')"
bash "$code/scripts/setup.sh"

lane() {
  local env=$1 out=$campaign/lanes/$1
  local common=(--envs "$env" --steps "$steps" --out "$out" --max-parallel 1 --no-live
                --set checkpoint.every=10000 checkpoint.keep=2)
  local failed=0  # a failed trial (reported by its sweep) does not hold up the later phases
  local phase seed presets
  # a later seed trains its two cheap trials first (td3-ann ~4x and td3-lif ~2.5x PT-LIF's speed): an unfinished
  # trial is lost with the folder, and this way a sitting that cannot finish PT-LIF still completes the other two
  for phase in "td3-proxy-lif,td3-ann 0" "td3-lif 0" "td3-ann,td3-lif,td3-proxy-lif $later_seeds"; do
    # per seed, the presets still to train: not those that benchmarks/campaign.json records as completed (a
    # completed trial whose folder was lost is carried over from there, see scripts/campaign_report.py)
    while read -r seed presets; do
      "$code/.venv/bin/spikerl" sweep "$presets" --seeds "$seed" "${common[@]}" < /dev/null || failed=1
    done < <("$code/.venv/bin/python" "$code/scripts/campaign_report.py" --out "$repo/benchmarks" \
               --todo "$env" ${phase% *} "${phase##* }")
  done
  return $failed
}

pids=()
for env in "${envs[@]}"; do
  lane "$env" > "$campaign/lane-$env.log" 2>&1 &
  pids+=($!)
  echo "[campaign] lane $env: pid $! (log $campaign/lane-$env.log)"
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "[campaign] lanes finished (status $status)"
exit $status
