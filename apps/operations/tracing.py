"""OpenTelemetry tracing, off by default: ``OTEL_EXPORTER_OTLP_ENDPOINT`` switches it on.

When on, each process (the web tier, each worker process) gets a tracer provider that
exports spans over OTLP/HTTP in batches, named ``sluice-web`` / ``sluice-worker-<queue>``,
and the field's own instrumentation records what it can see: Django requests, Celery
publishes and runs (with the trace context in the task headers, so one trace follows a
question web → retrieve → generate), psycopg statements, Redis commands and httpx calls. The
call to TGI goes through huggingface_hub's httpx2, which no instrumentation patches: the
generation backend makes its client span itself (``generation.request``) and sends the
trace context in a ``traceparent`` header. ``span()`` adds the steps they cannot see: admission, the cache ladder, query
embedding, search (with its fusion, done in the same SQL statement), generation.

Off, ``span()`` is OpenTelemetry's no-op: a context manager and nothing else (the cost,
measured, is in docs/benchmarks.md).
"""
import contextlib
import logging

from django.conf import settings
from opentelemetry import trace

logger = logging.getLogger(__name__)

tracer = trace.get_tracer("sluice")  # a proxy: real once a provider is set, no-op before
_configured = False


# Tracing off: one shared context manager whose span ignores everything (no context switch,
# no attribute dict), so the spans in the query path cost a function call.
_OFF = contextlib.nullcontext(trace.INVALID_SPAN)


def span(name: str, **attributes):
    """``with span("sluice.search", mode=mode) as current:``, a span of our own under the
    current one (``current.set_attribute(...)`` works either way)."""
    if not _configured:
        return _OFF
    return tracer.start_as_current_span(name, attributes={f"sluice.{k}": v for k, v in attributes.items()})


def tracing_setup(*, service: str, django: bool = False) -> bool:
    """Switch tracing on in this process when an OTLP endpoint is configured; True if on.
    Call once per process, after a fork (the batch exporter's thread does not survive one)."""
    global _configured
    if _configured or not settings.SLUICE_TRACING:
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.namespace": "sluice"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if django:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _configured = True
    logger.info("tracing on: %s exports spans over OTLP/HTTP", service)
    return True


def tracing_asgi(application):
    """The web tier's ASGI application, inside OpenTelemetry's ASGI middleware when tracing is
    on: the request's server span then lives in the async context the views run in, which
    ``sync_to_async`` copies into their threads, so the Celery publish and the SQL of a
    request are its children. (Django's own instrumentation alone starts its span in the
    middleware's thread, whose context never reaches an async view.)"""
    if not _configured:
        return application
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(application, excluded_urls="/api/v1/health/,/metrics")


def current_trace_id() -> str:
    """The current trace's id (32 hex digits), or "" when tracing is off."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
