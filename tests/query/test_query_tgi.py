"""The query path against TGI's real HTTP protocol (the stand-in in devstack/tgi_standin): the
generate worker and the web tier (which routes answers to the generate queue only when a
backend is configured) are restarted with SLUICE_GENERATION_BACKEND=tgi pointing at it."""
import json
import time

import pytest

from apps.query.models import QueryLog
from tests.helpers import wait_document
from tests.query.test_query_api import sse_events

pytestmark = pytest.mark.stack

TGI_SETTINGS = {"max_concurrent_requests": 4, "tokens_per_second": 200, "answer_tokens": 30}
TGI_ENV = {"SLUICE_GENERATION_TIMEOUT": "3", "SLUICE_GENERATION_INFO_TTL": "0"}  # limits re-read per query


@pytest.fixture(autouse=True)
def clean_standin(tgi, live_db):
    from apps.operations.overload.breaker import breaker_reset

    tgi.clear_fault()
    tgi.reset()
    breaker_reset("tgi")  # earlier failures must not open the breaker here
    yield


def _query(client, collection, **body):
    return client.post("/query/", json={"collection": collection["id"], **body})


def test_sync_answer_generated_by_tgi_cites_real_passages(client, collection, corpus, tgi, live_db):
    response = _query(client, collection, query="What do volcanoes erupt?", top_k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generator"] == "tgi" and body["degraded"] is False
    assert "</s>" not in body["answer"] and "[1]" in body["answer"]
    assert body["citations"][0]["n"] == 1 and body["citations"][0]["document_id"] == corpus["Volcanoes"]
    assert tgi.stats()["completed"] == 1
    assert QueryLog.objects.get(pk=body["query_id"]).generator == "tgi"


def test_streamed_tokens_come_from_tgi_as_they_are_generated(client, collection, corpus, tgi):
    with client.stream("POST", "/query/", json={"collection": collection["id"], "query": "bread yeast", "stream": True}) as response:
        events = sse_events(response)
    tokens = [data["text"] for name, data in events if name == "token"]
    done = events[-1][1]
    assert events[-1][0] == "done" and len(tokens) > 5
    assert "".join(tokens).strip() == done["answer"] and done["generator"] == "tgi"


@pytest.mark.parametrize("fault", ["overloaded", "error_500", "hang"])
def test_tgi_failures_give_a_degraded_extractive_answer_never_a_500(client, collection, corpus, tgi, fault, live_db):
    tgi.set_fault(fault)
    started = time.monotonic()
    response = _query(client, collection, query="What do volcanoes erupt?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generator"] == "extractive" and body["degraded"] is True
    expected = {"overloaded": "overloaded", "error_500": "unavailable", "hang": "timeout"}[fault]
    assert body["degraded_reason"].startswith(expected)
    assert body["citations"] and "lava" in body["answer"]
    assert time.monotonic() - started < 15  # the hang is cut at SLUICE_GENERATION_TIMEOUT (3 s)
    assert QueryLog.objects.get(pk=body["query_id"]).outcome == "degraded"


def test_passages_are_fitted_into_the_model_budget(client, collection, tgi, live_db):
    long_text = "\n\n".join(f"Section {i}: glaciers carve valleys and move rocks downhill slowly." * 6 for i in range(12))
    doc = client.post(f"/collections/{collection['id']}/documents/", json={"text": long_text}).json()["documents"][0]
    assert wait_document(client, doc["id"])["status"] == "ready"
    tgi.configure(max_input_tokens=400, max_total_tokens=700)
    try:
        body = _query(client, collection, query="How do glaciers move rocks?", top_k=10).json()
    finally:
        tgi.configure(max_input_tokens=4095, max_total_tokens=4096)
    # Accepted by the server (no 422 fallback), with fewer passages than retrieved.
    assert body["generator"] == "tgi" and body["degraded"] is False, body
    assert tgi.stats()["validation_errors"] == 0


def test_a_client_that_disconnects_cancels_generation(client, collection, corpus, tgi, live_db):
    tgi.configure(tokens_per_second=5, answer_tokens=200)
    try:
        with client.stream("POST", "/query/", json={"collection": collection["id"], "query": "lava", "stream": True}) as response:
            seen = 0
            query_id = None
            for line in response.iter_lines():
                if line.startswith("data: ") and query_id is None:
                    query_id = json.loads(line[6:])["query_id"]
                if line.startswith("event: token"):
                    seen += 1
                    if seen == 2:
                        break  # leave mid-stream: the connection is closed
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (tgi.stats()["in_flight"] or not tgi.stats()["cancelled"]):
            time.sleep(0.1)
        stats = tgi.stats()
        assert stats["in_flight"] == 0 and stats["cancelled"] >= 1 and stats["completed"] == 0
        while time.monotonic() < deadline and QueryLog.objects.get(pk=query_id).outcome == "pending":
            time.sleep(0.1)
        assert QueryLog.objects.get(pk=query_id).outcome == "cancelled"
    finally:
        tgi.configure(tokens_per_second=200, answer_tokens=30)
