#!/usr/bin/env bash
# Aggregator throughput (a rebuild of ROUNDS x 51,444 GA 2018 primary cells,
# cells per CPU-second of the process, against a bare rdkafka consumer
# reading the same topic in the same run) and cell-produced -> result-acked
# latency while the GA 2021 runoff night is replayed, on the local stack.
#
#   bench/aggregate.sh [ROUNDS] [RUNS]      # default 20 rounds, 3 runs
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export VOTEWIRE_FIXTURES=${VOTEWIRE_FIXTURES:-$ROOT/../shared/fixtures}
set -a
# shellcheck disable=SC1090
source "$(deploy/local/stack env)"
set +a
cargo build --release -q -p votewire-tests --example aggregate_bench
echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs)"
for _ in $(seq "${2:-3}"); do
  target/release/examples/aggregate_bench "${1:-20}" 2>/dev/null
done
