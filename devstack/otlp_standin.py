"""An OpenTelemetry collector stand-in: receives OTLP/HTTP trace exports (protobuf, what
``opentelemetry-exporter-otlp-proto-http`` sends to ``OTEL_EXPORTER_OTLP_ENDPOINT`` +
``/v1/traces``) and keeps the spans in memory, for the tracing tests and the overhead bench.

``with OTLPStandIn() as collector:`` serves on 127.0.0.1 (a free port) in a background
thread; ``collector.endpoint`` is what to put in ``OTEL_EXPORTER_OTLP_ENDPOINT``;
``collector.spans()`` lists what arrived, each a ``Span``.
"""
from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    service: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else str(any_value)


def spans_decode(body: bytes) -> list[Span]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(Span(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(), name=s.name,
                    service=str(resource.get("service.name", "")), kind=s.kind, start_ns=s.start_time_unix_nano,
                    end_ns=s.end_time_unix_nano, attributes={a.key: _value(a.value) for a in s.attributes},
                ))
    return spans


class OTLPStandIn:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self.requests = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                received = spans_decode(body)
                with standin._lock:
                    standin._spans.extend(received)
                    standin.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OTLPStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OTLPStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def spans(self, *, trace_id: str | None = None) -> list[Span]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait(self, predicate, *, timeout_s: float = 20.0, poll_s: float = 0.1) -> list[Span]:
        """The spans once ``predicate(spans)`` holds; AssertionError with what arrived otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({f"{s.service}:{s.name}" for s in spans})
                raise AssertionError(f"spans did not arrive within {timeout_s}s; got {len(spans)}: {names[:60]}")
            time.sleep(poll_s)
