#!/usr/bin/env bash
# The ingest scale bench: one `votewire ingest` process polls N HTTP feeds
# served by bench's feed farm (mostly 304, a few changing), against the
# local stack. Prints the ingestor's CPU (share of one core) and peak RSS
# over a steady window, and how well every feed was kept within cadence.
#
#   bench/ingest_feeds.sh                 # 1000 feeds, 5 s cadence, 1% change per 5 s, 150 s run
#   FEEDS=200 RUN=60 bench/ingest_feeds.sh
#
# Needs the stack up (deploy/local/stack up). Uses fresh topics and tables,
# so it never touches the demo's data. Release builds.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FEEDS=${FEEDS:-1000}
RUN=${RUN:-150}          # seconds the ingestor runs
WARMUP=${WARMUP:-60}     # seconds before the measured window starts
CADENCE=${CADENCE:-5s}
CHANGE_PERCENT=${CHANGE_PERCENT:-1}
PORT=${FARM_PORT:-18080}
export VOTEWIRE_FIXTURES=${VOTEWIRE_FIXTURES:-$ROOT/../shared/fixtures}

set -a
# shellcheck disable=SC1090
source "$(deploy/local/stack env)"
set +a

cargo build --release -q -p votewire -p votewire-tests --example feed_farm
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "logs kept in $work" || rm -rf "$work"' EXIT

target/release/examples/feed_farm --listen "127.0.0.1:$PORT" --feeds "$FEEDS" \
  --change-percent "$CHANGE_PERCENT" --change-every "$CADENCE" 2>"$work/farm.log" &
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$PORT/stats" >/dev/null 2>&1 && break
  sleep 0.1
done

run_id="bench$(date +%s)"
for i in $(seq 0 $((FEEDS - 1))); do
  cat <<EOF
[[feed]]
id = "bench:$run_id:$i"
family = "csv"
election_id = "bench"
[feed.source]
kind = "http"
url = "http://127.0.0.1:$PORT/feed/$i.csv"
[feed.cadence]
interval = "$CADENCE"
jitter = "1s"
stale_after = "10m"
[feed.mapping]
final_newline = "optional"   # the PA county file ends without a newline

EOF
done > "$work/feeds.toml"

export VOTEWIRE_TABLE_PREFIX="$run_id-"
export VOTEWIRE_TOPIC_VOTES="$run_id.votes" VOTEWIRE_TOPIC_SNAPSHOTS="$run_id.snapshots"
export VOTEWIRE_TOPIC_FEED_STATUS="$run_id.status" VOTEWIRE_TOPIC_DLQ="$run_id.dlq"
export VOTEWIRE_TOPIC_RESULTS="$run_id.results"
export VOTEWIRE_TOPIC_RESULTS_TEST="$run_id.results-test"
export VOTEWIRE_TOPIC_ALERTS="$run_id.alerts"
export VOTEWIRE_STATE_DIR="$work/state"

target/release/votewire ingest --feeds "$work/feeds.toml" --instance bench-1 \
  --run-for "${RUN}s" --print-payloads false >"$work/ingest.out" 2>"$work/ingest.err" &
pid=$!

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
sleep "$WARMUP"
t0=$(date +%s%3N); c0=$(ticks); since=$t0
window=$((RUN - WARMUP - 10))
sleep "$window"
t1=$(date +%s%3N); c1=$(ticks)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
stats=$(curl -fs "http://127.0.0.1:$PORT/stats?since_ms=$since")
wait "$pid" || { echo "ingest failed:"; tail -20 "$work/ingest.err"; exit 1; }

cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v ms="$((t1 - t0))" 'BEGIN {printf "%.1f", 100 * c / hz / (ms / 1000)}')
published=$(grep -c "^feed=" "$work/ingest.out" || true)
errors=$(grep -vc "leased\|^votewire ingest\|registry" "$work/ingest.err" || true)
echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs)"
echo "feeds=$FEEDS cadence=$CADENCE change=${CHANGE_PERCENT}%/${CADENCE} window=${window}s (after ${WARMUP}s warm-up)"
echo "ingest cpu=${cpu}% of one core, peak_rss=$((rss_kb / 1024)) MB, error lines=$errors"
echo "farm $stats"
