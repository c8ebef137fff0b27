#!/usr/bin/env bash
# The results origin under reader traffic: `wrk` against
# GET /v1/results/{election}/{contest} of a release `votewire api` on the
# local stack, first as full 200 answers, then as CDN revalidations
# (If-None-Match with the current ETag: bodiless 304s); then the same two
# for the live page's public JSON, /live/contests. The results topic
# holds one contest at every GA county (159 results), written in the
# aggregator's wire format by the stack's Python (fastavro).
#
#   bench/api_results.sh [SECONDS] [CONNECTIONS]     # default 20 s, 64
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-20}
CONNECTIONS=${2:-64}
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; } >/dev/null
fi
set -a
# shellcheck disable=SC1090
source "$(deploy/local/stack env)"
set +a
cargo build --release -q -p votewire
RUN="bench-api-$(date +%s)"
export VOTEWIRE_TOPIC_RESULTS="$RUN.results"
export VOTEWIRE_TOPIC_RESULTS_TEST="$RUN.results-test"
export VOTEWIRE_TOPIC_ALERTS="$RUN.alerts"
"$VOTEWIRE_PYTHON" - "$VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS" "$VOTEWIRE_TOPIC_RESULTS" <<'PY'
import io, json, struct, sys
import fastavro
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
# The API follows the test results topic too (?mode=test): it must exist.
made = admin.create_topics(
    [NewTopic(t, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})
     for t in (topic, topic.removesuffix(".results") + ".results-test")])
for f in made.values():
    f.result()
schema = fastavro.parse_schema(json.load(open("schemas/avro/ContestResult.avsc")))
schema_id = json.load(open("schemas/ids.json"))["votewire.v1.ContestResult"]
p = Producer({"bootstrap.servers": bootstrap})
for i in range(159):
    unit = f"county-{i:03d}"
    r = {"election_id": "bench", "contest_id": "clarity:GA:107556/10100", "contest_name": "US Senate (Loeffler) - Special",
         "unit_id": unit, "unit_name": unit, "unit_type": "county", "parent_unit_id": "-1", "mode": "live",
         "official_feed_id": "clarity:GA:107556",
         "choices": [{"choice_id": str(j), "choice_name": n, "party": None, "votes": 1000 * (i + 1) + j, "percent": 50.0,
                      "reported": 1000 * (i + 1) + j, "sum_of_children": None, "winner": None, "by_source": []}
                     for j, n in enumerate(["Kelly Loeffler (I) (Rep)", "Raphael Warnock (Dem)"])],
         "total_votes": 2000 * (i + 1) + 1, "leader_choice_id": "1", "margin_votes": 1, "margin_pct": 0.0,
         "aggregates_disagree": False, "precincts_reporting": 10, "precincts_total": 10, "pct_expected_vote": None,
         "last_updated": 1609891000000, "contributors": [], "trace_id": None}
    buf = io.BytesIO()
    buf.write(b"\0" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(buf, schema, r)
    p.produce(topic, key=f"bench/clarity:GA:107556/10100/{unit}", value=buf.getvalue())
p.flush(30)
PY
TOKEN="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
REGISTRY=$(mktemp -d)
VOTEWIRE_API_TOKENS="bench read $TOKEN" target/release/votewire api --listen 127.0.0.1:18089 \
  --feeds "$REGISTRY" --rate-limit 10000000 --run-for "$(( SECONDS_EACH * 5 + 30 ))s" 2>/dev/null &
API=$!
trap 'kill $API 2>/dev/null || true; rm -rf "$REGISTRY"' EXIT
URL="http://127.0.0.1:18089/v1/results/bench/clarity:GA:107556%2F10100"
for _ in $(seq 50); do
  curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$URL" && break
  sleep 0.2
done
BYTES=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL" | wc -c)
ETAG=$(curl -sfI -H "Authorization: Bearer $TOKEN" "$URL" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
echo "machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs); body $BYTES bytes, ETag $ETAG"
echo "== 200: full answers ($CONNECTIONS connections, $SECONDS_EACH s)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -H "Authorization: Bearer $TOKEN" "$URL" \
  | grep -E "Requests/sec|Latency |Non-2xx| 50%| 99%|requests in"
echo "== 304: CDN revalidations with If-None-Match"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -H "Authorization: Bearer $TOKEN" \
  -H "If-None-Match: $ETAG" "$URL" \
  | grep -E "Requests/sec|Latency |Non-2xx| 50%| 99%|requests in"
LIVE="http://127.0.0.1:18089/live/contests?election=bench"
LBYTES=$(curl -sf "$LIVE" | wc -c)
LETAG=$(curl -sfI "$LIVE" | awk 'tolower($1)=="etag:" {print $2}' | tr -d '\r')
echo "== /live/contests 200: the live page's JSON, no token (body $LBYTES bytes)"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency "$LIVE" \
  | grep -E "Requests/sec|Latency |Non-2xx| 50%| 99%|requests in"
echo "== /live/contests 304: CDN revalidations"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -H "If-None-Match: $LETAG" "$LIVE" \
  | grep -E "Requests/sec|Latency |Non-2xx| 50%| 99%|requests in"
