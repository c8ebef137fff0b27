#!/usr/bin/env python3
"""A votewire results subscriber in Python (confluent-kafka + fastavro).

Reads the compacted results topic from the beginning (the current state of
every race first, then every update) and prints one JSON object per result:
{"key": ..., "schema_id": ..., "result": {...ContestResult...}}.

Records use the Confluent wire format: byte 0 is 0 (the magic byte),
bytes 1-4 the big-endian schema id, then the Avro binary body. The schema
is read from schemas/avro/ContestResult.avsc, the schema of that id in
schemas/ids.json.

    python3 docs/examples/consume_results.py --bootstrap 127.0.0.1:9092 \\
        --topic votewire.results.v1 [--idle 5]

Tested in CI against the local broker (votewire/tests/cli/subscribers.rs,
subscribers_read_results_with_the_documented_examples).
"""
import argparse
import datetime
import io
import json
import os
import struct
import sys
import time
import uuid

import fastavro
from confluent_kafka import Consumer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "schemas", "avro", "ContestResult.avsc")


def plain(o):
    """JSON for what fastavro decodes logical types into: timestamp-millis
    fields (last_updated) become datetimes; print them as epoch millis, as
    they are on the wire."""
    if isinstance(o, datetime.datetime):
        return round(o.timestamp() * 1000)
    raise TypeError(f"{type(o).__name__} is not JSON")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="votewire.results.v1")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--idle", type=float, default=None,
                    help="stop after this many seconds without a record (default: follow)")
    args = ap.parse_args()

    with open(args.schema) as f:
        schema = fastavro.parse_schema(json.load(f))
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # A group of its own: every run reads the whole topic. A newsroom
        # service would keep one group id and commit to resume where it was.
        "group.id": f"results-reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.topic])
    last = time.monotonic()
    try:
        while args.idle is None or time.monotonic() - last < args.idle:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                print(f"kafka: {m.error()}", file=sys.stderr)
                continue
            last = time.monotonic()
            value = m.value()
            if value is None:
                continue  # a tombstone: the key's result was withdrawn
            if len(value) < 5 or value[0] != 0:
                print(f"offset {m.offset()}: not Confluent-framed", file=sys.stderr)
                continue
            (schema_id,) = struct.unpack(">I", value[1:5])
            result = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
            print(json.dumps({"key": m.key().decode(), "schema_id": schema_id, "result": result},
                             default=plain), flush=True)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
