#!/usr/bin/env python3
"""A small, real OTLP receiver for the local stack and the tests.

It speaks OTLP/gRPC (default 127.0.0.1:4317) and OTLP/HTTP with protobuf or
JSON bodies (default 127.0.0.1:4318), decoding with the official
opentelemetry-proto messages. Nothing is forwarded anywhere: what arrives is
kept in memory (bounded) so tests can read it back:

    GET  /received?trace_id=<hex>&service=<name>&name=<span name>
         -> {"spans": [...], "metrics": [...]}   (filters optional)
    GET  /healthz -> "ok"

This is not a collector. Production and docker-compose use the real
OpenTelemetry Collector; nothing like it can be installed on these machines.
"""

import argparse
import collections
import json
import signal
import sys
import threading
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

MAX_SPANS = 200_000
MAX_METRICS = 50_000
MAX_BODY = 16 * 1024 * 1024

lock = threading.Lock()
spans = collections.deque(maxlen=MAX_SPANS)
metrics = collections.deque(maxlen=MAX_METRICS)
log_records = collections.deque(maxlen=MAX_SPANS)


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def store_traces(req, transport):
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        service = resource.get("service.name", "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "transport": transport,
                    "service": service,
                    "resource": resource,
                    "scope": ss.scope.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": s.kind,
                    "start_unix_nano": s.start_time_unix_nano,
                    "end_unix_nano": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(),
                               "attributes": attrs(l.attributes)} for l in s.links],
                    "events": [{"name": e.name, "attributes": attrs(e.attributes)} for e in s.events],
                    "status_code": s.status.code,
                })
    with lock:
        spans.extend(out)


def store_metrics(req, transport):
    out = []
    for rm in req.resource_metrics:
        service = attrs(rm.resource.attributes).get("service.name", "")
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.append({"transport": transport, "service": service, "name": m.name,
                            "data": json_format.MessageToDict(m)})
    with lock:
        metrics.extend(out)


def store_logs(req, transport):
    out = []
    for rl in req.resource_logs:
        service = attrs(rl.resource.attributes).get("service.name", "")
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append({"transport": transport, "service": service,
                            "body": any_value(r.body), "trace_id": r.trace_id.hex()})
    with lock:
        log_records.extend(out)


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        store_traces(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        store_metrics(request, "grpc")
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        store_logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


HTTP_ROUTES = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                   trace_service_pb2.ExportTraceServiceResponse, store_traces),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse, store_metrics),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest,
                 logs_service_pb2.ExportLogsServiceResponse, store_logs),
}


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the log quiet; one line per error only
        pass

    def reply(self, code, body, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        route = HTTP_ROUTES.get(urllib.parse.urlparse(self.path).path)
        if route is None:
            return self.reply(404, b"unknown OTLP path\n", "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, b"too large\n", "text/plain")
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding", "") == "gzip":
            import gzip
            body = gzip.decompress(body)
        req_type, resp_type, store = route
        req = req_type()
        is_json = "json" in (self.headers.get("Content-Type") or "")
        try:
            if is_json:
                json_format.Parse(body, req)
            else:
                req.ParseFromString(body)
        except Exception as e:  # a malformed export is the client's bug: say so
            sys.stderr.write(f"rejected export on {self.path}: {e}\n")
            return self.reply(400, f"cannot decode: {e}\n".encode(), "text/plain")
        store(req, "http")
        resp = resp_type()
        if is_json:
            self.reply(200, json_format.MessageToJson(resp).encode(), "application/json")
        else:
            self.reply(200, resp.SerializeToString(), "application/x-protobuf")

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/healthz":
            return self.reply(200, b"ok\n", "text/plain")
        if url.path != "/received":
            return self.reply(404, b"not found\n", "text/plain")
        q = urllib.parse.parse_qs(url.query)
        want = {k: v[0] for k, v in q.items()}
        with lock:
            got_spans = [s for s in spans
                         if all(s.get(k) == v for k, v in want.items() if k in ("trace_id", "service", "name"))]
            got_metrics = [m for m in metrics
                           if all(m.get(k) == v for k, v in want.items() if k in ("service", "name"))]
            got_logs = len(log_records)
        body = json.dumps({"spans": got_spans, "metrics": got_metrics, "log_records": got_logs}).encode()
        self.reply(200, body, "application/json")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--grpc-port", type=int, default=4317)
    ap.add_argument("--http-port", type=int, default=4318)
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", MAX_BODY)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    if server.add_insecure_port(f"{args.host}:{args.grpc_port}") == 0:
        sys.exit(f"cannot bind OTLP/gRPC on {args.host}:{args.grpc_port}")
    server.start()
    http = ThreadingHTTPServer((args.host, args.http_port), Http)
    print(f"otlp receiver: grpc {args.host}:{args.grpc_port}, http {args.host}:{args.http_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (http.shutdown(), server.stop(1)))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
