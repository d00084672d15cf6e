"""POST /api/v1/search/ through the real queues: query embedding on the embed worker
(interactive priority), hybrid/vector/text retrieval on the retrieve worker."""
import httpx
import pytest
from django.conf import settings

from apps.documents.services.embedding import texts_embed
from apps.retrieval.filters import filters_validate
from apps.retrieval.selectors import chunks_search
from tests.helpers import wait_document

pytestmark = pytest.mark.stack

def _search(client, collection, **body):
    return client.post("/search/", json={"collection": collection["id"], **body})


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_each_mode_finds_the_matching_document_first(client, collection, corpus, mode):
    response = _search(client, collection, query="volcanoes erupt lava", mode=mode, top_k=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == mode and body["timings"]["total_ms"] > 0
    top = body["results"][0]
    assert top["document_id"] == corpus["Volcanoes"] and top["title"] == "Volcanoes"
    assert "molten lava" in top["text"] and top["score"] > 0 and isinstance(top["heading_path"], list)
    assert len(body["results"]) <= 2


def test_hybrid_fuses_both_rankings(client, collection, corpus):
    results = _search(client, collection, query="bread dough yeast", mode="hybrid", top_k=3).json()["results"]
    assert results[0]["document_id"] == corpus["Bread"]
    assert results[0]["vector_rank"] is not None and results[0]["text_rank"] is not None


def test_text_mode_with_no_match_returns_nothing(client, collection, corpus):
    response = _search(client, collection, query="quantum chromodynamics", mode="text")
    assert response.status_code == 200 and response.json()["results"] == []


def test_filters_restrict_results_inside_the_sql(client, collection, corpus):
    body = _search(client, collection, query="bread oven", filters={"lang": "fr"}, top_k=5).json()
    assert {r["document_id"] for r in body["results"]} == {corpus["Pain"]}
    body = _search(client, collection, query="bread oven", filters={"topic": ["geology", "food"], "lang": "en"}).json()
    assert {r["document_id"] for r in body["results"]} == {corpus["Bread"], corpus["Volcanoes"]}
    body = _search(client, collection, query="bread", filters={"document_ids": [corpus["Volcanoes"]]}).json()
    assert {r["document_id"] for r in body["results"]} == {corpus["Volcanoes"]}


def test_a_selective_filter_still_returns_top_k(client, collection, live_db):
    text = "\n\n".join(f"Filler paragraph {i} about common everyday things." for i in range(150))
    filler = client.post(f"/collections/{collection['id']}/documents/", json={"text": text, "metadata": {"tag": "common"}}).json()
    rare = client.post(
        f"/collections/{collection['id']}/documents/",
        json={"text": "\n\n".join(f"Rare note {i} on lichens." for i in range(3)) + "\n\n" + "x " * 300,
              "metadata": {"tag": "rare"}},
    ).json()
    for doc in (filler, rare):
        assert wait_document(client, doc["documents"][0]["id"])["status"] == "ready"
    rare_chunks = wait_document(client, rare["documents"][0]["id"])["chunk_count"]
    top_k = min(3, rare_chunks)
    vector = texts_embed(texts=["everyday things"])[0]
    for using in ("default", "replica1"):
        hits = chunks_search(
            collection_ids=[collection["id"]], query="everyday things", query_vector=vector, mode="vector",
            top_k=top_k, filters=filters_validate({"tag": "rare"}), using=using,
        )
        assert len(hits) == top_k and {h.document_id for h in hits} == {rare["documents"][0]["id"]}


def test_an_empty_collection_gives_an_empty_result(client, collection):
    response = _search(client, collection, query="anything at all")
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * (settings.SLUICE_QUERY_MAX_CHARS + 1)}, "query"),
        ({"query": "ok", "top_k": 0}, "top_k"),
        ({"query": "ok", "top_k": settings.SLUICE_SEARCH_MAX_TOP_K + 1}, "top_k"),
        ({"query": "ok", "mode": "fuzzy"}, "mode"),
        ({"query": "ok", "filters": ["lang"]}, "filters"),
        ({"query": "ok", "filters": {"lang": {"$ne": "en"}}}, "filters"),
        ({"query": "ok", "filters": {"document_ids": "7"}}, "filters"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client, collection, body, field):
    response = _search(client, collection, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert field in error["fields"]
    if body.get("query", "").startswith("xxx"):
        assert str(settings.SLUICE_QUERY_MAX_CHARS) in str(error["fields"]["query"])


def test_unknown_or_foreign_collection_is_404(client, stack):
    assert client.post("/search/", json={"collection": 987654321, "query": "hi"}).status_code == 404


def test_malformed_json_and_wrong_method(client, collection):
    response = client.post("/search/", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "parse_error"
    assert client.get("/search/").status_code == 405


def test_anonymous_search_is_refused(stack, collection):
    response = httpx.post(f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1/search/",
                          json={"collection": collection["id"], "query": "hi"})
    assert response.status_code in (401, 403) and "error" in response.json()
