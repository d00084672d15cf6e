"""What /metrics adds for operators: request latency per endpoint (sync and async views),
Celery task latency, outcome and queue wait per queue (worker signals), embedding
throughput and cache hit ratio, replica lag in seconds."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.documents.services.ingestion import CHUNKS_EMBEDDED
from apps.operations.metrics import metric_value
from apps.operations.middleware import REQUEST_SECONDS
from tests.helpers import eventually, wait_document
from workers.signals import TASK_SECONDS, TASK_WAIT_SECONDS

pytestmark = pytest.mark.stack


def _samples(api) -> dict:
    text = api.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_request_task_and_embedding_metrics(api, client, collection, live_db):
    def requests(route, method):
        return metric_value(REQUEST_SECONDS, route=route, method=method, status="2xx")

    listed, searched = requests("collection-list", "GET"), requests("search", "POST")
    ingest = metric_value(TASK_SECONDS, queue="embed", task="sluice.documents.ingest", outcome="success")
    search_runs = metric_value(TASK_SECONDS, queue="retrieve", task="sluice.retrieval.search", outcome="success")
    search_waits = metric_value(TASK_WAIT_SECONDS, queue="retrieve", task="sluice.retrieval.search")
    chunks = metric_value(CHUNKS_EMBEDDED)

    client.get("/collections/")
    document = client.post(f"/collections/{collection['id']}/documents/",
                           json={"title": "Owls", "text": "Owls hunt at night and sleep by day."}).json()["documents"][0]
    done = wait_document(client, document["id"])
    assert done["status"] == "ready"
    assert client.post("/search/", json={"collection": collection["id"], "query": "owls"}).status_code == 200

    eventually(lambda: requests("search", "POST") == searched + 1)  # the async view's write is fired off
    assert requests("collection-list", "GET") == listed + 1
    assert metric_value(TASK_SECONDS, queue="embed", task="sluice.documents.ingest", outcome="success") >= ingest + 2
    # Recorded after the result is stored (the client has its answer first).
    eventually(lambda: metric_value(TASK_SECONDS, queue="retrieve", task="sluice.retrieval.search",
                                    outcome="success") == search_runs + 1)
    eventually(lambda: metric_value(TASK_WAIT_SECONDS, queue="retrieve", task="sluice.retrieval.search")
               == search_waits + 1)
    assert metric_value(CHUNKS_EMBEDDED) == chunks + done["chunk_count"]

    samples = _samples(api)
    assert samples[("sluice_http_request_duration_seconds_count",
                    (("method", "POST"), ("route", "search"), ("status", "2xx")))] >= 1
    assert samples[("sluice_task_duration_seconds_count",
                    (("outcome", "success"), ("queue", "retrieve"), ("task", "sluice.retrieval.search")))] >= 1
    assert samples[("sluice_chunks_embedded_total", ())] >= done["chunk_count"]
    lookups = {labels[0][1]: value for (name, labels), value in samples.items()
               if name == "sluice_embedding_cache_lookups_total"}
    assert lookups["hit"] > 0 and lookups["miss"] > 0  # the ingest's last step reads its cached vectors
    ratio = samples[("sluice_embedding_cache_hit_ratio", ())]
    assert ratio == pytest.approx(lookups["hit"] / (lookups["hit"] + lookups["miss"]))
    assert ("sluice_replica_lag_seconds", (("replica", "replica1"),)) in samples
