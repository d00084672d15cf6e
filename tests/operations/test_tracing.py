"""OpenTelemetry tracing across the real processes: one question, one trace, every hop.

The web tier and the retrieve and generate workers are restarted with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at an in-memory OTLP collector in this process
(devstack/otlp_standin.py: it keeps what the real OTLP/HTTP exporter sends); generation
goes to the TGI stand-in, so the trace shows the httpx call to TGI too. Afterwards the
processes are restarted without it: tracing is off by default."""
import pytest

from devstack.otlp_standin import OTLPStandIn
from tests.helpers import web_restart, worker_restart
from workers.queues import Queue

pytestmark = pytest.mark.stack

TGI_SETTINGS = {"max_concurrent_requests": 4, "tokens_per_second": 400}
TRACING_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_BSP_SCHEDULE_DELAY")
TRACED = (Queue.RETRIEVE, Queue.GENERATE)


@pytest.fixture(scope="module")
def collector(stack, tgi):
    with OTLPStandIn() as standin:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": standin.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        for queue in TRACED:
            worker_restart(stack, queue, **env)
        web_restart(stack, **env)
        try:
            yield standin
        finally:
            for queue in TRACED:
                worker_restart(stack, queue, clear=TRACING_ENV)
            web_restart(stack, clear=TRACING_ENV)


def _one(spans, *, service: str, name: str):
    found = [s for s in spans if s.service == service and s.name == name]
    assert found, f"no span {name!r} from {service}; got {sorted({(s.service, s.name) for s in spans})}"
    return found[0]


def test_one_query_is_one_trace_across_web_retrieve_and_generate(collector, client, collection, corpus):
    response = client.post("/query/", json={"collection": collection["id"], "query": "What comes out of volcanoes?"})
    assert response.status_code == 200, response.text
    assert response.json()["generator"].startswith("tgi")

    def complete(spans):  # every process exported its spans, the enclosing ones (which end last) included
        names = {(s.service, s.name) for s in spans}
        return {("sluice-worker-generate", "run/sluice.generation.answer"),
                ("sluice-worker-retrieve", "run/sluice.retrieval.search"),
                ("sluice-web", "POST /api/v1/query/")} <= names

    spans = collector.wait(complete)
    answer_run = _one(spans, service="sluice-worker-generate", name="run/sluice.generation.answer")
    trace = collector.spans(trace_id=answer_run.trace_id)
    by_id = {s.span_id: s for s in trace}

    # The web tier's request is the root; every hop hangs below it in the same trace.
    request = next(s for s in trace if s.service == "sluice-web" and not s.parent_id)
    assert request.attributes.get("http.request.method", request.attributes.get("http.method")) == "POST"
    publish_search = _one(trace, service="sluice-web", name="apply_async/sluice.retrieval.search")
    search_run = _one(trace, service="sluice-worker-retrieve", name="run/sluice.retrieval.search")
    publish_answer = _one(trace, service="sluice-worker-retrieve", name="apply_async/sluice.generation.answer")
    # Parent links across the queue: each task's run is a child of its publish, in another process.
    assert search_run.parent_id == publish_search.span_id
    assert answer_run.parent_id == publish_answer.span_id

    def ancestors(span):
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            yield span

    for name, service in [("sluice.admission", "sluice-web"), ("sluice.embed.query", "sluice-worker-retrieve"),
                          ("sluice.cache.semantic", "sluice-worker-retrieve"), ("sluice.search", "sluice-worker-retrieve"),
                          ("sluice.generate", "sluice-worker-generate")]:
        step = _one(trace, service=service, name=name)
        assert request in list(ancestors(step)), f"{name} is not under the request"
        assert step.end_ns >= step.start_ns
    search = _one(trace, service="sluice-worker-retrieve", name="sluice.search")
    assert search.attributes["sluice.mode"] == "hybrid" and search.attributes["sluice.fusion"] == "rrf"
    assert search.attributes["sluice.hits"] >= 1
    # What the instrumentation packages add: SQL on the replica under the search, the TGI call under generation.
    assert any(s.service == "sluice-worker-retrieve" and search in list(ancestors(s)) and
               "db.system" in s.attributes | {k.split(".")[0] + ".system": 1 for k in s.attributes if k.startswith("db.")}
               for s in trace)
    generate = _one(trace, service="sluice-worker-generate", name="sluice.generate")
    tgi_calls = [s for s in trace if s.service == "sluice-worker-generate" and generate in list(ancestors(s))
                 and s.name == "generation.request"]
    assert tgi_calls, "no client span for the call to TGI under sluice.generate"
    assert tgi_calls[0].attributes["server.address"].startswith("http://127.0.0.1:")
    # Each hop has its time: the request covers everything after it.
    assert request.duration_ms >= search_run.duration_ms > 0
