"""POST /api/v1/query/ end to end with the default extractive generator: sync, async
(GET /api/v1/tasks/{id}/), streaming (SSE), citations pointing at real chunks."""
import json
import time

import httpx
import pytest

from apps.documents.models import Chunk
from apps.generation.services.extractive import EXTRACTIVE_LABEL
from apps.query.models import QueryLog
from tests.helpers import wait_document

pytestmark = pytest.mark.stack


def sse_events(response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: "):])))
    return events


def _query(client, collection, **body):
    return client.post("/query/", json={"collection": collection["id"], **body})


def _assert_answer_body(body, corpus, *, generator="extractive"):
    assert body["generator"] == generator and body["degraded"] is False
    assert body["citations"], body
    for citation in body["citations"]:
        chunk = Chunk.objects.get(pk=citation["chunk_id"])
        assert chunk.document_id == citation["document_id"] and citation["document_id"] in corpus.values()
        assert citation["snippet"] and chunk.text.startswith(citation["snippet"][:50])
        assert f"[{citation['n']}]" in body["answer"]
    for stage in ("embed_ms", "retrieve_ms", "generate_ms", "total_ms", "queue_ms"):
        assert body["timings"][stage] >= 0


def test_sync_query_answers_extractively_with_citations(client, collection, corpus, live_db):
    response = _query(client, collection, query="What do volcanoes erupt?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].startswith(EXTRACTIVE_LABEL) and "lava" in body["answer"]
    _assert_answer_body(body, corpus)
    assert body["citations"][0]["document_id"] == corpus["Volcanoes"]
    log = QueryLog.objects.get(pk=body["query_id"])
    assert (log.outcome, log.generator, log.response_mode, log.served_by) == ("ok", "extractive", "sync", "extractive")
    assert log.latency_ms > 0 and log.timings["retrieve_ms"] >= 0


def test_async_query_returns_a_task_and_the_same_body_when_done(client, collection, corpus, live_db, stack):
    response = _query(client, collection, query="How is bread baked?", **{"async": True})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/api/v1/tasks/{accepted['task_id']}/"
    deadline = time.monotonic() + 30
    while True:
        state = client.get(f"/tasks/{accepted['task_id']}/").json()
        if state["state"] == "SUCCESS" or time.monotonic() > deadline:
            break
        assert state["state"] in ("PENDING", "STARTED")
        time.sleep(0.1)
    assert state["state"] == "SUCCESS"
    _assert_answer_body(state["result"], corpus)
    assert state["result"]["citations"][0]["document_id"] == corpus["Bread"]
    # Another user cannot read the result.
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username=f"other-{accepted['task_id'][:8]}", password="other-pass-123")
    with httpx.Client(base_url=str(client.base_url), auth=(f"other-{accepted['task_id'][:8]}", "other-pass-123")) as other:
        assert other.get(f"/tasks/{accepted['task_id']}/").status_code == 404
    assert client.get("/tasks/not-a-task/").status_code == 404


def test_streaming_query_sends_tokens_then_a_final_event(client, collection, corpus, live_db):
    with client.stream("POST", "/query/", json={"collection": collection["id"], "query": "volcano lava", "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "token" in names
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "token") == done["answer"]
    _assert_answer_body(done, corpus)
    assert QueryLog.objects.get(pk=done["query_id"]).response_mode == "stream"


def test_filters_restrict_the_cited_passages(client, collection, corpus):
    body = _query(client, collection, query="bread oven baking", filters={"lang": "fr"}).json()
    assert {c["document_id"] for c in body["citations"]} == {corpus["Pain"]}


def test_an_empty_collection_gets_a_clear_answer(client, collection):
    response = _query(client, collection, query="Is anything here?")
    assert response.status_code == 200
    body = response.json()
    assert "No passages in this collection match the question." in body["answer"]
    assert body["citations"] == [] and body["generator"] == "extractive"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "ok", "top_k": 0}, "top_k"),
        ({"query": "ok", "filters": "lang=en"}, "filters"),
        ({"query": "ok", "async": True, "stream": True}, "stream"),
        ({"query": "ok", "stream": "perhaps"}, "stream"),
    ],
)
def test_bad_query_requests_are_400(client, collection, body, field):
    response = _query(client, collection, **body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"]


def test_unknown_collection_is_404(client, stack):
    response = client.post("/query/", json={"collection": 123456789, "query": "hello"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_an_answer_made_before_a_purge_is_not_cached_after_it(client, collection, live_db):
    """The purge generation (the stale floor) guards the cache writes: an answer computed
    for a version older than the last removal of text is not stored."""
    from apps.query.caches import CacheScope, answer_cache_store, answer_caches_purge, exact_get, stale_get

    document = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Otters hold hands."})
    document_id = document.json()["documents"][0]["id"]
    assert wait_document(client, document_id)["status"] == "ready"
    version = client.get(f"/collections/{collection['id']}/").json()["content_version"]
    before = CacheScope(collection_id=collection["id"], content_version=version, params="p")
    assert client.delete(f"/documents/{document_id}/").status_code == 204
    answer_caches_purge(collection_id=collection["id"], document_id=document_id)  # (also run on commit)
    body = {"answer": "Otters hold hands [1].", "citations": [{"document_id": document_id}], "generator": "extractive"}
    answer_cache_store(scope=before, query="what do otters do", vector=None, body=body, semantic=False)
    assert exact_get(scope=before, query="what do otters do") is None
    later = CacheScope(collection_id=collection["id"], content_version=version + 5, params="p")
    assert stale_get(scope=later, query="what do otters do") is None
