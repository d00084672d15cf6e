"""Overload control on the real stack, with the TGI stand-in at a fixed capacity (2 slots):
admission sheds the lowest class first, deadlines drop abandoned work, the answer caches
serve repeats and paraphrases and are invalidated by document changes, the breaker opens
on a failing server, and no response is ever a 500."""
import json
import time
import uuid

import httpx
import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.operations.overload.breaker import breaker_reset, breaker_state
from apps.query.models import QueryLog, SemanticCacheEntry
from tests.helpers import eventually, wait_document
from tests.query.test_query_api import sse_events
from workers.load import queue_loads

pytestmark = pytest.mark.stack

DOCS = [
    ("Volcanoes", "Volcanoes erupt molten lava and ash when magma rises through the crust."),
    ("Bread", "Bakers knead dough and let the yeast ferment before baking bread in hot ovens."),
]


TGI_SETTINGS = {"max_concurrent_requests": 2, "tokens_per_second": 100, "answer_tokens": 10}
TGI_ENV = {"SLUICE_GENERATION_TIMEOUT": "10", "SLUICE_GENERATION_INFO_TTL": "0"}


@pytest.fixture(autouse=True)
def clean(tgi, live_db, overload_policy):
    tgi.clear_fault()
    tgi.reset()
    breaker_reset("tgi")
    yield
    tgi.clear_fault()
    eventually(lambda: tgi.stats()["in_flight"] == 0, timeout_s=30)


@pytest.fixture
def docs(client, collection):
    ids = {}
    for title, text in DOCS:
        response = client.post(f"/collections/{collection['id']}/documents/", json={"title": title, "text": text})
        ids[title] = response.json()["documents"][0]["id"]
    for document_id in ids.values():
        assert wait_document(client, document_id)["status"] == "ready"
    return ids


def _ask(client, collection, query: str, **body) -> httpx.Response:
    response = client.post("/query/", json={"collection": collection["id"], "query": query, **body})
    assert response.status_code != 500, response.text
    return response


def _metrics(api) -> dict:
    return {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}


def _sample(families: dict, name: str, suffix: str = "_total", **labels) -> float:
    family = families.get(name)
    if family is None:
        return 0.0
    return sum(s.value for s in family.samples
               if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()))


def test_saturated_generation_sheds_batch_with_503_while_interactive_still_answers(
        client, collection, docs, tgi, overload_policy, api):
    before = _metrics(api)
    overload_policy(shedding_enabled=False)  # the saturating work itself is all admitted
    tgi.set_fault("slow", delay_s=2.0)
    # Eight async interactive questions: both TGI slots busy, the rest queued behind them.
    pending = [_ask(client, collection, f"volcano question {i} {uuid.uuid4().hex[:6]}", **{"async": True})
               for i in range(8)]
    assert all(r.status_code == 202 for r in pending)
    def saturated():
        loads = queue_loads(["retrieve", "generate"])
        retrieve, generate = loads["retrieve"], loads["generate"]
        return retrieve.depth == 0 and retrieve.inflight == 0 and generate.inflight >= 2 and generate.depth >= 1

    eventually(saturated, timeout_s=10)  # retrieval is done: only generation is saturated
    overload_policy(shedding_enabled=True, max_wait_batch=0.0, max_wait_interactive=0.1)  # set at runtime

    batch = _ask(client, collection, "What do volcanoes erupt?", priority="batch")
    assert batch.status_code == 503, batch.text
    error = batch.json()["error"]
    assert error["code"] == "overloaded" and error["reason"] == "generate_queue_wait"
    assert error["priority"] == "batch" and error["estimated_wait_s"]["generate"] > 0
    assert int(batch.headers["Retry-After"]) >= 1 and error["retry_after"] == int(batch.headers["Retry-After"])
    assert QueryLog.objects.get(pk=error["query_id"]).outcome == "rejected"

    started = time.monotonic()
    interactive = _ask(client, collection, "What do volcanoes erupt?")
    assert interactive.status_code == 200, interactive.text
    body = interactive.json()
    # Not queued behind the saturated generation: answered from retrieval at once, and says so.
    assert time.monotonic() - started < 2.0
    assert body["served_by"] == "extractive" and body["degraded"] is True, body
    assert body["degraded_reason"].startswith("overloaded") and body["citations"]
    assert body["priority"] == "interactive"

    # The queued interactive work still completes with generated answers.
    tgi.clear_fault()
    for response in pending:
        url = response.json()["status_url"].removeprefix("/api/v1")
        eventually(lambda: client.get(url).json()["state"] in ("SUCCESS", "FAILURE"), timeout_s=30)
        result = client.get(url).json()
        assert result["state"] == "SUCCESS" and result["result"]["generator"] == "tgi", json.dumps(result)
    after = _metrics(api)
    shed = dict(endpoint="query", priority_class="batch", route="reject", reason="generate_queue_wait")
    assert _sample(after, "sluice_admissions", **shed) == _sample(before, "sluice_admissions", **shed) + 1
    degraded = dict(endpoint="query", priority_class="interactive", route="retrieval_only")
    assert _sample(after, "sluice_admissions", **degraded) >= _sample(before, "sluice_admissions", **degraded) + 1


def test_no_retrieve_worker_means_503_with_retry_after_not_a_hang(client, collection, docs, stack):
    stack.stop_part("worker-retrieve")
    try:
        started = time.monotonic()
        search = client.post("/search/", json={"collection": collection["id"], "query": "lava"})
        query = _ask(client, collection, "What do volcanoes erupt?")
        assert time.monotonic() - started < 3
    finally:
        stack.start_part("worker-retrieve")
    for response in (search, query):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["reason"] == "no_workers" and response.headers["Retry-After"]
    eventually(lambda: queue_loads(["retrieve"])["retrieve"].capacity > 0, timeout_s=60)


def test_a_task_whose_deadline_passed_is_dropped_without_generation(
        client, collection, docs, tgi, stack, overload_policy, api):
    overload_policy(shedding_enabled=False)  # admitted as it is: the worker must drop it itself
    before = _sample(_metrics(api), "sluice_tasks_dropped", queue="generate", reason="expired")
    stack.stop_part("worker-generate")
    try:
        response = _ask(client, collection, "What do volcanoes erupt?", deadline_ms=1500, **{"async": True})
        assert response.status_code == 202
        query_id = response.json()["query_id"]
        # The search step runs and hands over to the generate queue, where nobody consumes.
        eventually(lambda: queue_loads(["generate"])["generate"].depth == 1, timeout_s=10)
        time.sleep(1.6)
    finally:
        stack.start_part("worker-generate")
    eventually(lambda: QueryLog.objects.get(pk=query_id).outcome != "pending", timeout_s=60)
    log = QueryLog.objects.get(pk=query_id)
    assert log.outcome == "expired" and "deadline" in log.error
    assert tgi.stats()["requests"] == 0  # generation never ran
    state = client.get(response.json()["status_url"].removeprefix("/api/v1")).json()
    assert state["state"] == "FAILURE" and state["error"]["code"] == "expired"
    assert _sample(_metrics(api), "sluice_tasks_dropped", queue="generate", reason="expired") == before + 1


def test_exact_and_semantic_caches_serve_repeats_until_a_document_changes(
        client, collection, docs, tgi, overload_policy):
    # The test stack embeds with the hashing backend (words and word pairs), so "near
    # identical" here means sharing most words; bench/overload.py uses the real model.
    overload_policy(semantic_cache_threshold=0.8)
    question = "What do volcanoes erupt when magma rises?"
    first = _ask(client, collection, question).json()
    assert first["served_by"] == "generation" and first["generator"] == "tgi"

    repeat = _ask(client, collection, "  what do VOLCANOES erupt when magma rises ").json()
    assert repeat["served_by"] == "exact_cache" and repeat["degraded"] is False
    assert repeat["answer"] == first["answer"] and repeat["citations"] == first["citations"]
    assert repeat["query_id"] != first["query_id"]

    paraphrase = _ask(client, collection, "What do volcanoes erupt when the magma rises?").json()
    assert paraphrase["served_by"] == "semantic_cache", paraphrase
    assert paraphrase["answer"] == first["answer"] and paraphrase["cache"]["similarity"] >= 0.8
    assert "question" not in paraphrase["cache"]  # another user's question is not shown
    unrelated = _ask(client, collection, "How do bakers make bread rise?").json()
    assert unrelated["served_by"] == "generation"
    assert tgi.stats()["completed"] == 2  # the first question and the unrelated one
    assert QueryLog.objects.get(pk=repeat["query_id"]).served_by == "exact_cache"

    # Any document change bumps the collection's version: both caches miss ...
    added = client.post(f"/collections/{collection['id']}/documents/",
                        json={"title": "Lava", "text": "Basaltic lava flows are hot and runny."}).json()
    assert wait_document(client, added["documents"][0]["id"])["status"] == "ready"
    assert _ask(client, collection, "What do volcanoes erupt when the magma rises?").json()["served_by"] == "generation"
    assert tgi.stats()["completed"] == 3
    # ... and the new version's answers are cached afresh (the original question now finds
    # the paraphrase's new answer, not its own answer of the old version).
    again = _ask(client, collection, question).json()
    assert again["served_by"] == "semantic_cache" and again["cache"]["cached_for_version"] > 0


def test_a_paraphrase_in_another_scope_is_not_served(client, collection, docs, tgi, overload_policy):
    overload_policy(semantic_cache_threshold=0.8)
    question = "What do volcanoes erupt when magma rises?"
    assert _ask(client, collection, question).json()["served_by"] == "generation"
    # Other parameters (top_k) are another scope: no exact, no semantic hit.
    other = _ask(client, collection, question, top_k=2).json()
    assert other["served_by"] == "generation"
    assert SemanticCacheEntry.objects.filter(collection_id=collection["id"]).count() == 2


def test_stale_answer_under_pressure_is_served_and_marked(client, collection, docs, tgi, stack):
    question = "What do volcanoes erupt?"
    first = _ask(client, collection, question).json()
    assert first["served_by"] == "generation"
    added = client.post(f"/collections/{collection['id']}/documents/", json={"title": "More", "text": "Ash clouds travel far."})
    assert wait_document(client, added.json()["documents"][0]["id"])["status"] == "ready"
    stack.stop_part("worker-retrieve")  # nothing can be answered fresh: rejected, unless stale
    try:
        stale = _ask(client, collection, question)
        other = _ask(client, collection, "A question never asked before?")
    finally:
        stack.start_part("worker-retrieve")
    assert stale.status_code == 200, stale.text
    body = stale.json()
    assert body["served_by"] == "stale_cache" and body["degraded"] is True and body["cache"]["stale"] is True
    assert body["answer"] == first["answer"] and body["degraded_reason"].startswith("stale")
    assert other.status_code == 503
    eventually(lambda: queue_loads(["retrieve"])["retrieve"].capacity > 0, timeout_s=60)


def test_breaker_opens_on_a_failing_server_and_closes_after_a_probe(
        client, collection, docs, tgi, overload_policy, api):
    overload_policy(breaker_failures=2, breaker_open_seconds=2.0)
    tgi.set_fault("down")
    for i in range(2):
        body = _ask(client, collection, f"What do volcanoes erupt? ({i})").json()
        assert body["degraded"] is True and body["degraded_reason"].startswith("unavailable")
    assert breaker_state("tgi") == "open"
    assert _sample(_metrics(api), "sluice_breaker_state", suffix="", backend="tgi") == 2
    requests = tgi.stats()["requests"]
    body = _ask(client, collection, "What do volcanoes erupt? (open)").json()
    assert body["served_by"] == "extractive" and body["degraded"] is True, body
    assert body["degraded_reason"].startswith("breaker_open") and body["citations"]
    assert tgi.stats()["requests"] == requests  # nothing sent while open

    tgi.clear_fault()
    time.sleep(2.1)
    probe = _ask(client, collection, "What do volcanoes erupt? (probe)").json()
    assert probe["generator"] == "tgi" and probe["degraded"] is False
    assert breaker_state("tgi") == "closed"
    assert _ask(client, collection, "What do volcanoes erupt? (after)").json()["generator"] == "tgi"


def test_streamed_cache_hit_and_class_rules(client, collection, docs, tgi):
    question = "How do bakers bake bread?"
    assert _ask(client, collection, question).json()["served_by"] == "generation"
    with client.stream("POST", "/query/", json={"collection": collection["id"], "query": question,
                                                "stream": True}) as response:
        events = sse_events(response)
    assert [name for name, _ in events] == ["start", "token", "done"]
    assert events[-1][1]["served_by"] == "exact_cache"

    raised = _ask(client, collection, question, priority="critical")
    assert raised.status_code == 400 and "priority" in raised.json()["error"]["fields"]
    assert "interactive" in raised.json()["error"]["message"]
    lowered = _ask(client, collection, question + " (batch)", priority="batch")
    assert lowered.status_code == 200 and lowered.json()["priority"] == "batch"
    assert _ask(client, collection, question, deadline_ms=10).status_code == 400
    assert _ask(client, collection, question, priority="urgent").status_code == 400


def test_policy_edited_in_the_admin_applies_without_restart(client, collection, docs, tgi, stack):
    from django.contrib.auth import get_user_model

    question = "What do volcanoes erupt?"
    assert _ask(client, collection, question).json()["served_by"] == "generation"
    assert _ask(client, collection, question).json()["served_by"] == "exact_cache"

    admin = get_user_model().objects.create_superuser(f"ops-{uuid.uuid4().hex[:6]}", password="x")
    browser = Client()
    browser.force_login(admin)
    form = browser.get("/admin/operations/overloadpolicy/1/change/")
    assert form.status_code == 200 and b"Admission control" in form.content
    data = {field.name: field.value() for field in form.context["adminform"].form}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v is not False and v is not None}
    data.pop("exact_cache_enabled", None)  # the operator unticks the exact cache
    saved = browser.post("/admin/operations/overloadpolicy/1/change/", data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    time.sleep(settings.SLUICE_OVERLOAD_POLICY_TTL * 2)
    assert _ask(client, collection, question).json()["served_by"] != "exact_cache"


def test_an_api_keys_priority_class_is_the_requests_class(key_client, docs, collection, client):
    batch_client, batch_user, _ = key_client(priority="batch")
    shared = client.post(f"/collections/{collection['id']}/shares/",
                         json={"user": batch_user.username, "access": "read"})
    assert shared.status_code == 201, shared.text
    body = batch_client.post("/query/", json={"collection": collection["id"], "query": "What is bread?"})
    assert body.status_code == 200 and body.json()["priority"] == "batch"
    assert QueryLog.objects.get(pk=body.json()["query_id"]).priority == "batch"
    raised = batch_client.post("/query/", json={"collection": collection["id"], "query": "What is bread?",
                                                "priority": "interactive"})
    assert raised.status_code == 400 and "'batch'" in raised.json()["error"]["message"]
    critical_client, critical_user, _ = key_client(priority="critical")
    client.post(f"/collections/{collection['id']}/shares/", json={"user": critical_user.username, "access": "read"})
    search = critical_client.post("/search/", json={"collection": collection["id"], "query": "lava"})
    assert search.status_code == 200 and search.json()["priority"] == "critical"


def test_an_async_query_dropped_before_retrieval_reports_expired(client, collection, docs, stack, overload_policy):
    overload_policy(shedding_enabled=False)
    stack.stop_part("worker-retrieve")
    try:
        response = _ask(client, collection, "What do volcanoes erupt?", deadline_ms=1000, **{"async": True})
        assert response.status_code == 202
        time.sleep(1.2)
    finally:
        stack.start_part("worker-retrieve")
    url = response.json()["status_url"].removeprefix("/api/v1")
    eventually(lambda: client.get(url).json()["state"] != "PENDING", timeout_s=60)
    state = client.get(url).json()
    assert state["state"] == "FAILURE" and state["error"]["code"] == "expired"
    assert QueryLog.objects.get(pk=response.json()["query_id"]).outcome == "expired"


def test_a_stream_that_fails_midway_is_reset_then_answered_extractively(client, collection, docs, tgi):
    tgi.set_fault("midstream_error", after_tokens=3)
    with client.stream("POST", "/query/", json={"collection": collection["id"], "query": "What do volcanoes erupt?",
                                                "stream": True}) as response:
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "reset" in names
    after_reset = "".join(data["text"] for name, data in events[names.index("reset"):] if name == "token")
    done = events[-1][1]
    assert done["degraded"] is True and done["generator"] == "extractive"
    assert after_reset == done["answer"]  # what the client shows after the reset is the final answer


def test_deleting_a_document_stops_its_stale_answers(client, collection, docs, stack):
    question = "What do volcanoes erupt?"
    first = _ask(client, collection, question).json()
    assert first["served_by"] == "generation" and first["citations"]
    cited = first["citations"][0]["document_id"]
    assert client.delete(f"/documents/{cited}/").status_code == 204
    stack.stop_part("worker-retrieve")  # under pressure the stale rung would answer ...
    try:
        response = _ask(client, collection, question)
    finally:
        stack.start_part("worker-retrieve")
    # ... but never with text quoted from a document that was deleted since.
    assert response.status_code == 503, response.text
    eventually(lambda: queue_loads(["retrieve"])["retrieve"].capacity > 0, timeout_s=60)
