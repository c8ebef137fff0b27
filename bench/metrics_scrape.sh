#!/usr/bin/env bash
# The /metrics scrape at election-night cardinality: FEEDS feeds' poll
# metrics through the ingestors' real instruments, rendered by the
# OpenTelemetry Prometheus exporter, against the prometheus crate's own
# registry holding the same series, in the same run. No stack needed.
#
#   bench/metrics_scrape.sh [FEEDS...]      # default 300 1000 3000
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
cargo build --release -q -p votewire-tests --example metrics_scrape_bench
echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs)"
[ $# -gt 0 ] || set -- 300 1000 3000
for feeds in "$@"; do
  target/release/examples/metrics_scrape_bench "$feeds" 50
done
