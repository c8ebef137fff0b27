#!/usr/bin/env python3
"""Readiness probes for the local stack: each sends one real protocol request.

    probe.py kafka HOST:PORT [IDS]    Kafka metadata request (confluent-kafka) listing
                                      every broker id in IDS (comma-separated)
    probe.py dynamodb URL             DynamoDB ListTables (boto3, from moto's deps)
    probe.py otlp GRPC_PORT HTTP_PORT an OTLP trace export over gRPC and over HTTP, read
                                      back from the receiver's /received
    probe.py jaeger GRPC_PORT HTTP_PORT QUERY_PORT
                                      an OTLP trace export over gRPC and over HTTP, read
                                      back through Jaeger's query API (/api/v3/traces)

Exit 0 when the service answered, 1 otherwise (with the reason on stderr).
"""

import sys
import time


def kafka(addr, want_ids=""):
    """A Metadata request sent to ADDR alone; WANT_IDS (comma-separated node
    ids) must all be listed as live brokers, so a node that is up but not
    yet registered with the controller (or fenced) is not ready."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": addr, "socket.timeout.ms": 2000,
                         "log_level": 0, "logger": _quiet_logger()})
    md = admin.list_topics(timeout=3)
    if not md.brokers:
        raise RuntimeError("metadata listed no brokers")
    listed = sorted(md.brokers)
    want = sorted(int(i) for i in want_ids.split(",") if i)
    missing = [i for i in want if i not in listed]
    if missing:
        raise RuntimeError(f"metadata lists brokers {listed}, not yet {missing}")
    ids = ",".join(str(i) for i in listed)
    return f"metadata lists brokers {ids}, {len(md.topics)} topic(s)"


def _quiet_logger():
    import logging
    log = logging.getLogger("probe-kafka")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def dynamodb(url):
    import boto3
    from botocore.config import Config
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local",
                          config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}))
    tables = client.list_tables()["TableNames"]
    return f"{len(tables)} table(s)"


def _export_probe_spans(grpc_port, http_port):
    """Exports one span over gRPC and one over HTTP, in one new trace; returns its id."""
    import os
    import urllib.request

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    trace_id = os.urandom(16)
    now = time.time_ns()

    def request(transport):
        span = trace_pb2.Span(trace_id=trace_id, span_id=os.urandom(8), name=f"stack.probe.{transport}",
                              start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        res = resource_pb2.Resource(attributes=[common_pb2.KeyValue(
            key="service.name", value=common_pb2.AnyValue(string_value="votewire-stack-probe"))])
        return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
            resource=res, scope_spans=[trace_pb2.ScopeSpans(spans=[span])])])

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(request("grpc"), timeout=3)
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/traces",
                                 data=request("http").SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"})
    urllib.request.urlopen(req, timeout=3).read()
    return trace_id.hex()


def otlp(grpc_port, http_port):
    import json
    import urllib.request

    trace_id = _export_probe_spans(grpc_port, http_port)
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/received?trace_id={trace_id}",
                                timeout=3) as r:
        got = json.load(r)["spans"]
    if len(got) != 2:
        raise RuntimeError(f"exported 2 probe spans, receiver returned {len(got)}")
    return "grpc and http exports received"


def jaeger(grpc_port, http_port, query_port):
    import json
    import urllib.error
    import urllib.request

    trace_id = _export_probe_spans(grpc_port, http_port)
    # Jaeger stores a span once its batch closes (200 ms in the stack's config).
    deadline = time.monotonic() + 5
    got = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{query_port}/api/v3/traces/{trace_id}",
                                        timeout=3) as r:
                body = json.load(r)
            got = sum(len(ss.get("spans", [])) for rs in body["result"]["resourceSpans"]
                      for ss in rs.get("scopeSpans", []))
            if got == 2:
                return "grpc and http exports read back through the query API"
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: not stored yet
                raise
        time.sleep(0.2)
    raise RuntimeError(f"exported 2 probe spans, Jaeger's query API returned {got}")


def main():
    probes = {"kafka": kafka, "dynamodb": dynamodb, "otlp": otlp, "jaeger": jaeger}
    if len(sys.argv) < 3 or sys.argv[1] not in probes:
        sys.exit(__doc__)
    try:
        print(probes[sys.argv[1]](*sys.argv[2:]))
    except Exception as e:  # the probe's whole job is to turn any failure into exit 1
        print(f"{sys.argv[1]} probe failed: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
