"""An OTLP/HTTP receiver for tests: decodes requests with the official protobuf
definitions (the `opentelemetry-proto` package), records them, and answers as scripted.

usage: otlp_receiver.py OUT_FILE CONTROL_FILE [PORT [CERT_PEM KEY_PEM [CLIENT_CA_PEM]]]

With CERT_PEM and KEY_PEM, both servers speak TLS only (HTTPS and gRPC over TLS); with
CLIENT_CA_PEM as well, they require a client certificate signed by that CA (mutual TLS).

Listens on 127.0.0.1 (on PORT, or a free port) for OTLP/HTTP, and on a free port for
OTLP/gRPC, and prints `READY <http port> <grpc port>` once both listen. For each
POST to /v1/traces, /v1/metrics or /v1/logs it appends one JSON line to OUT_FILE:
  {"signal", "content_type", "gzip", "headers", "status", "body"}
where body is the decoded request (protobuf → dict, with trace/span ids as lowercase hex),
or null with "error" when the request could not be decoded (answered 400); a JSON request
also keeps the document as sent, in "wire_json".

CONTROL_FILE holds scripted answers, re-read on every request: {"traces": [step, ...]}
where each step is consumed once, in order, per signal:
  {"status": 503, "retry_after": "1"}   answer that status (with Retry-After)
  {"status": 429, "retry_after_date_in": 2}
                                         ... with Retry-After as an HTTP-date 2 s ahead
  {"delay_ms": 1500}                     wait, then answer normally
  {"rejected": 3, "message": "why"}      200 with a partial success
  {"grpc_code": "UNAVAILABLE"}           (gRPC) fail the call with that status code
  {"grpc_code": "RESOURCE_EXHAUSTED", "retry_delay_ms": 1200}
                                         (gRPC) ... with a google.rpc.RetryInfo detail
When a signal's steps run out, requests get 200 (gRPC: OK) with an empty response.
gRPC requests are recorded like HTTP ones, with content_type "application/grpc" and
"status" 200 on success or the status code's name.
"""
import base64
import email.utils
import gzip
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

SIGNALS = {
    "/v1/traces": ("traces", trace_pb.ExportTraceServiceRequest, trace_pb.ExportTraceServiceResponse, "rejected_spans"),
    "/v1/metrics": ("metrics", metrics_pb.ExportMetricsServiceRequest, metrics_pb.ExportMetricsServiceResponse, "rejected_data_points"),
    "/v1/logs": ("logs", logs_pb.ExportLogsServiceRequest, logs_pb.ExportLogsServiceResponse, "rejected_log_records"),
}
ID_FIELDS = ("traceId", "spanId", "parentSpanId")
LOCK = threading.Lock()
CONSUMED = {}


def hex_ids_to_base64(node):
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ID_FIELDS and isinstance(v, str):
                if v and (len(v) % 2 or any(c not in "0123456789abcdef" for c in v)):
                    raise ValueError(f"{k} is not lowercase hex: {v!r}")
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                hex_ids_to_base64(v)
    elif isinstance(node, list):
        for item in node:
            hex_ids_to_base64(item)


def base64_ids_to_hex(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ID_FIELDS and isinstance(v, str):
                node[k] = base64.b64decode(v).hex()
            else:
                base64_ids_to_hex(v)
    elif isinstance(node, list):
        for item in node:
            base64_ids_to_hex(item)


def next_step(control_file, signal):
    try:
        with open(control_file) as f:
            script = json.load(f)
    except (OSError, ValueError):
        script = {}
    steps = script.get(signal, [])
    with LOCK:
        used = CONSUMED.get(signal, 0)
        if used < len(steps):
            CONSUMED[signal] = used + 1
            return steps[used]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, entry):
        with LOCK:
            with open(self.server.out_file, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def answer(self, status, body=b"", content_type="text/plain", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path not in SIGNALS:
            self.answer(404, b"unknown path")
            return
        signal, request_type, response_type, rejected_field = SIGNALS[self.path]
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        gzipped = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        entry = {
            "signal": signal,
            "content_type": content_type,
            "gzip": gzipped,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        try:
            data = gzip.decompress(raw) if gzipped else raw
            message = request_type()
            if content_type == "application/x-protobuf":
                message.ParseFromString(data)
            elif content_type == "application/json":
                doc = json.loads(data)
                entry["wire_json"] = json.loads(data)
                hex_ids_to_base64(doc)
                json_format.ParseDict(doc, message)
            else:
                raise ValueError(f"unsupported content type {content_type!r}")
            body = json_format.MessageToDict(message)
            base64_ids_to_hex(body)
            entry["body"] = body
        except Exception as e:  # any decoding failure is the sender's fault: 400
            entry.update(body=None, error=str(e), status=400)
            self.record(entry)
            self.answer(400, str(e).encode())
            return

        step = next_step(self.server.control_file, signal) or {}
        if "delay_ms" in step:
            time.sleep(step["delay_ms"] / 1000.0)
        status = step.get("status", 200)
        entry["status"] = status
        self.record(entry)
        if status != 200:
            headers = {"Retry-After": step["retry_after"]} if "retry_after" in step else {}
            if "retry_after_date_in" in step:
                headers["Retry-After"] = email.utils.formatdate(time.time() + step["retry_after_date_in"], usegmt=True)
            self.answer(status, b"scripted failure", headers=headers)
            return
        response = response_type()
        if "rejected" in step:
            setattr(response.partial_success, rejected_field, step["rejected"])
            response.partial_success.error_message = step.get("message", "")
        if content_type == "application/json":
            self.answer(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self.answer(200, response.SerializeToString(), "application/x-protobuf")


def start_grpc(out_file, control_file, tls=None, client_ca=None):
    import grpc
    from concurrent import futures
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as metrics_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as trace_grpc

    def handle(signal, response_type, rejected_field, request, context):
        metadata = {k.lower(): v for k, v in context.invocation_metadata()}
        body = json_format.MessageToDict(request)
        base64_ids_to_hex(body)
        entry = {"signal": signal, "content_type": "application/grpc", "gzip": metadata.get("grpc-encoding") == "gzip",
                 "headers": metadata, "body": body}
        step = next_step(control_file, signal) or {}
        if "delay_ms" in step:
            time.sleep(step["delay_ms"] / 1000.0)
        code = step.get("grpc_code")
        entry["status"] = code or 200
        with LOCK:
            with open(out_file, "a") as f:
                f.write(json.dumps(entry) + "\n")
        if code and "retry_delay_ms" in step:
            from google.protobuf import any_pb2
            from google.rpc import code_pb2, error_details_pb2, status_pb2
            from grpc_status import rpc_status
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromMilliseconds(step["retry_delay_ms"])
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=getattr(code_pb2, code), message="scripted throttling", details=[detail])
            context.abort_with_status(rpc_status.to_status(status))
        if code:
            context.abort(getattr(grpc.StatusCode, code), "scripted failure")
        response = response_type()
        if "rejected" in step:
            setattr(response.partial_success, rejected_field, step["rejected"])
            response.partial_success.error_message = step.get("message", "")
        return response

    class Traces(trace_grpc.TraceServiceServicer):
        def Export(self, request, context):
            return handle("traces", trace_pb.ExportTraceServiceResponse, "rejected_spans", request, context)

    class Metrics(metrics_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            return handle("metrics", metrics_pb.ExportMetricsServiceResponse, "rejected_data_points", request, context)

    class Logs(logs_grpc.LogsServiceServicer):
        def Export(self, request, context):
            return handle("logs", logs_pb.ExportLogsServiceResponse, "rejected_log_records", request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    if tls:
        cert, key = (open(f, "rb").read() for f in tls)
        roots = open(client_ca, "rb").read() if client_ca else None
        credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=roots, require_client_auth=bool(roots))
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def main():
    out_file, control_file = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    tls = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else None
    client_ca = sys.argv[6] if len(sys.argv) > 6 else None
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if tls:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.out_file = out_file
    server.control_file = control_file
    server.daemon_threads = True
    grpc_server, grpc_port = start_grpc(out_file, control_file, tls, client_ca)
    print(f"READY {server.server_address[1]} {grpc_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
