"""Full-text ranking (text mode, and the text side of hybrid) through POST /api/v1/search/:
natural-language questions become an OR of their weighted terms, dotted names are split,
web-search syntax is taken literally, filters apply (docs/query.md, "Retrieval")."""
import uuid

import httpx
import pytest
from django.conf import settings
from django.db import connections

from tests.helpers import wait_document

pytestmark = pytest.mark.stack

DOCS = [
    ("textwrap", "dedent(text) removes any common leading whitespace from every line in the text.", {"topic": "python"}),
    ("heapq", "heappushpop(heap, item) pushes the item on the heap, then pops and returns the smallest item.", {"topic": "python"}),
    ("Volcanoes", "Volcanoes erupt molten lava and ash when magma rises through the crust.", {"topic": "geology"}),
    ("Bread", "Bakers knead dough and let the yeast ferment before baking bread in hot ovens.", {"topic": "food"}),
]


@pytest.fixture(scope="module")
def texts(stack, django_db_blocker):
    """One collection of DOCS (one chunk each) shared by this module's tests, which only read it:
    ``(client, collection_id, {title: document_id})``."""
    from django.contrib.auth import get_user_model

    password = uuid.uuid4().hex
    with django_db_blocker.unblock():
        user = get_user_model().objects.create_user(username=f"text-{uuid.uuid4().hex[:10]}", password=password)
    with httpx.Client(
        base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
        auth=(user.username, password), timeout=60,
    ) as client:
        collection = client.post("/collections/", json={"name": "text-search"}).json()
        body = {"documents": [{"title": t, "text": x, "metadata": m} for t, x, m in DOCS]}
        documents = client.post(f"/collections/{collection['id']}/documents/", json=body).json()["documents"]
        ids = {title: d["id"] for (title, _, _), d in zip(DOCS, documents)}
        for document_id in ids.values():
            assert wait_document(client, document_id)["status"] == "ready"
        yield client, collection["id"], ids


def _titles(texts, query: str, *, mode: str = "text", **body) -> list[str]:
    return [hit["title"] for hit in _search(texts, query, mode=mode, **body)]


def _search(texts, query: str, *, mode: str = "text", **body) -> list[dict]:
    client, collection_id, _ = texts
    response = client.post("/search/", json={"collection": collection_id, "query": query, "mode": mode, **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _websearch_matches(texts, query: str) -> int:
    """Chunks that all of ``query``'s words match (the old, AND-only reading of a question)."""
    _, collection_id, _ = texts
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM documents_chunk WHERE collection_id = %s"
            " AND search_vector @@ websearch_to_tsquery('english', %s)",
            [collection_id, query],
        )
        return cursor.fetchone()[0]


def test_a_question_no_chunk_fully_matches_gets_hits_ranked_by_matching_terms(texts, live_db):
    question = "How hot does lava get when a volcano erupts?"
    assert _websearch_matches(texts, question) == 0  # no chunk holds every word
    hits = _search(texts, question)
    # Volcanoes holds lava, volcano, erupt; Bread only "hot"; the others none of them.
    assert [h["title"] for h in hits] == ["Volcanoes", "Bread"]
    assert 1 > hits[0]["score"] > hits[1]["score"] > 0  # the share of the question's term weight
    assert [h["text_rank"] for h in hits] == [1, 2]
    hybrid = {h["title"]: h for h in _search(texts, question, mode="hybrid", top_k=4)}
    assert hybrid["Volcanoes"]["text_rank"] == 1 and hybrid["Bread"]["text_rank"] == 2
    # A question of stop words only has no terms: no text hits, and no error.
    assert _search(texts, "How do I do it?") == []


def test_a_dotted_identifier_finds_the_bare_name(texts, live_db):
    question = "What does textwrap.dedent do?"
    assert _websearch_matches(texts, question) == 0  # Postgres reads `textwrap.dedent` as one token
    hits = _search(texts, question)
    assert [h["title"] for h in hits] == ["textwrap"] and "dedent(text)" in hits[0]["text"]
    hybrid = [h for h in _search(texts, question, mode="hybrid", top_k=4) if h["title"] == "textwrap"]
    assert hybrid[0]["text_rank"] == 1


def test_web_search_syntax_is_taken_literally(texts):
    assert _titles(texts, '"molten lava"') == ["Volcanoes"]
    assert _titles(texts, '"lava molten"') == []  # a phrase, not two words
    assert _titles(texts, "lava -yeast") == ["Volcanoes"]
    assert _titles(texts, "lava dough -yeast") == []  # every term must match, and none excluded
    assert set(_titles(texts, "lava OR dough")) == {"Volcanoes", "Bread"}
    # Without operators the same words are a question: any of them matches.
    assert set(_titles(texts, "lava dough yeast")) == {"Volcanoes", "Bread"}


def test_filters_apply_in_text_mode(texts):
    _, _, ids = texts
    question = "Which of lava, dough, the heap or dedent?"
    assert set(_titles(texts, question)) == {"Volcanoes", "Bread", "heapq", "textwrap"}
    assert set(_titles(texts, question, filters={"topic": "python"})) == {"heapq", "textwrap"}
    assert set(_titles(texts, question, filters={"topic": ["geology", "food"]})) == {"Volcanoes", "Bread"}
    assert _titles(texts, question, filters={"document_ids": [ids["Bread"]]}) == ["Bread"]
    assert _titles(texts, '"molten lava"', filters={"topic": "food"}) == []
    hybrid = _search(texts, question, mode="hybrid", filters={"topic": "python"})
    assert {h["title"] for h in hybrid} == {"heapq", "textwrap"} and all(h["text_rank"] for h in hybrid)
