#!/usr/bin/env bash
# Publish throughput (votewire's publisher against a raw rdkafka producer,
# same records, same broker, alternating runs) and fetch-complete -> acked
# latency per payload size, against the local stack's broker.
#
#   bench/publish.sh [RUNS]      # default 5
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export VOTEWIRE_FIXTURES=${VOTEWIRE_FIXTURES:-$ROOT/../shared/fixtures}
set -a
# shellcheck disable=SC1090
source "$(deploy/local/stack env)"
set +a
cargo build --release -q -p votewire-ingestors --example publish_bench
echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs)"
target/release/examples/publish_bench "${1:-5}"
