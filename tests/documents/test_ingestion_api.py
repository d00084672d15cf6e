"""Ingestion end to end: REST upload → embed worker → chunks in pgvector."""
import pytest
from django.db import connections

from apps.documents.models import Chunk, Document
from tests.helpers import wait_document
from tests.factories import pdf_build, pdf_text_page

pytestmark = pytest.mark.stack

MARKDOWN = b"""# Rivers

Rivers carry water from the mountains to the sea.

## Deltas

A delta forms where a river deposits sediment at its mouth.

## Floods

Floods happen when a river overflows its banks after heavy rain.
"""

HTML = b"""<html><head><title>Harbour guide</title><style>p{color:red}</style>
<script>var secret = "script-text-must-not-be-indexed";</script></head>
<body><h1>Harbours</h1><p>Ships moor in the harbour at night.</p>
<p style="display: none">hidden-text-must-not-be-indexed</p>
<h2>Tides</h2><p>The tide rises twice a day.</p></body></html>"""


def _upload_files(client, collection, files, **data):
    return client.post(f"/collections/{collection['id']}/documents/", files=files, data=data)


def _chunks(document_id):
    return list(Chunk.objects.filter(document_id=document_id).order_by("ordinal"))


def test_json_text_ingests_to_ready(client, collection, live_db):
    response = client.post(
        f"/collections/{collection['id']}/documents/",
        json={"title": "Lighthouses", "text": "A lighthouse guides ships at night.\n\nIts lamp turns.", "metadata": {"lang": "en"}},
    )
    assert response.status_code == 202, response.text
    [doc] = response.json()["documents"]
    assert doc["status"] == "queued" and doc["duplicate"] is False
    assert doc["status_url"] == f"/api/v1/documents/{doc['id']}/"
    done = wait_document(client, doc["id"])
    assert done["status"] == "ready", done
    assert done["progress"] == 1.0 and done["chunk_count"] >= 1
    chunks = _chunks(doc["id"])
    assert len(chunks) == done["chunk_count"]
    assert "lighthouse guides ships" in chunks[0].text
    assert len(chunks[0].embedding) == 384
    assert chunks[0].document_metadata == {"lang": "en"}
    assert chunks[0].collection_id == collection["id"]


def test_markdown_html_and_pdf_files_ingest_with_sensible_chunks(client, collection, live_db):
    pdf = pdf_build(pages=[pdf_text_page("Glaciers move slowly downhill."), pdf_text_page("Moraines mark where a glacier ended.")])
    response = _upload_files(client, collection, [
        ("files", ("rivers.md", MARKDOWN, "text/markdown")),
        ("files", ("harbour.html", HTML, "text/html")),
        ("files", ("glaciers.pdf", pdf, "application/pdf")),
    ])
    assert response.status_code == 202, response.text
    docs = {d["source"]: d for d in response.json()["documents"]}
    assert {d["format"] for d in docs.values()} == {"markdown", "html", "pdf"}
    for doc in docs.values():
        assert wait_document(client, doc["id"])["status"] == "ready"

    md = _chunks(docs["rivers.md"]["id"])
    assert any("delta forms" in c.text for c in md)
    for chunk in md:
        text = MARKDOWN.decode()
        assert text[chunk.metadata["char_start"]:chunk.metadata["char_end"]] == chunk.text
        assert chunk.metadata["heading_path"][0] == "Rivers"
        assert chunk.token_count <= 200

    html_text = " ".join(c.text for c in _chunks(docs["harbour.html"]["id"]))
    assert "Ships moor in the harbour" in html_text and "tide rises" in html_text
    assert "must-not-be-indexed" not in html_text

    pdf_text = " ".join(c.text for c in _chunks(docs["glaciers.pdf"]["id"]))
    assert "Glaciers move slowly downhill" in pdf_text and "Moraines" in pdf_text
    # The full-text column is filled from the chunk text by Postgres itself.
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM documents_chunk WHERE document_id = %s AND search_vector @@ plainto_tsquery('english', 'glacier')",
            [docs["glaciers.pdf"]["id"]],
        )
        assert cursor.fetchone()[0] >= 1


def test_duplicate_upload_is_a_no_op(client, collection, live_db):
    payload = {"title": "Dup", "text": "Exactly the same words, uploaded twice."}
    first = client.post(f"/collections/{collection['id']}/documents/", json=payload).json()["documents"][0]
    assert wait_document(client, first["id"])["status"] == "ready"
    before = Chunk.objects.filter(document__collection_id=collection["id"]).count()
    again = client.post(f"/collections/{collection['id']}/documents/", json=payload)
    assert again.status_code == 200
    [doc] = again.json()["documents"]
    assert doc["id"] == first["id"] and doc["duplicate"] is True and doc["status"] == "ready"
    assert Document.objects.filter(collection_id=collection["id"]).count() == 1
    assert Chunk.objects.filter(document__collection_id=collection["id"]).count() == before


def test_malformed_pdf_fails_readably_while_the_rest_of_the_upload_succeeds(client, collection, live_db):
    response = _upload_files(client, collection, [
        ("files", ("good.txt", b"Good text about owls hunting at dusk.", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf at all", "application/pdf")),
    ])
    assert response.status_code == 202, response.text
    docs = {d["source"]: d for d in response.json()["documents"]}
    assert wait_document(client, docs["good.txt"]["id"])["status"] == "ready"
    broken = wait_document(client, docs["broken.pdf"]["id"])
    assert broken["status"] == "failed"
    assert "PDF" in broken["error"] and broken["chunk_count"] == 0
    assert Chunk.objects.filter(document_id=broken["id"]).count() == 0


def test_pdf_that_decompresses_to_too_much_text_fails_with_a_reason(client, collection, live_db, settings):
    bomb = pdf_build(pages=[pdf_text_page("word " * 400_000)], compress=True)  # ~2 MB of text in a few KB
    assert len(bomb) < 100_000
    doc = _upload_files(client, collection, [("files", ("bomb.pdf", bomb, "application/pdf"))]).json()["documents"][0]
    # The worker's limit is the test stack's SLUICE_TEXT_MAX_CHARS (1,000,000).
    done = wait_document(client, doc["id"])
    assert done["status"] == "failed"
    assert "1,000,000 characters" in done["error"] and "Split it" in done["error"]


def test_delete_removes_the_document_and_its_chunks(client, collection, live_db):
    doc = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Temporary text about bees."}).json()["documents"][0]
    assert wait_document(client, doc["id"])["status"] == "ready"
    version = client.get(f"/collections/{collection['id']}/").json()["content_version"]
    assert client.delete(f"/documents/{doc['id']}/").status_code == 204
    assert client.get(f"/documents/{doc['id']}/").status_code == 404
    assert Chunk.objects.filter(document_id=doc["id"]).count() == 0
    assert client.get(f"/collections/{collection['id']}/").json()["content_version"] > version


def test_reindex_replaces_chunks_atomically_with_a_new_version(client, collection, live_db):
    doc = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Whales sing.\n\nDolphins click."}).json()["documents"][0]
    ready = wait_document(client, doc["id"])
    old_ids = {c.pk for c in _chunks(doc["id"])}
    response = client.post(f"/documents/{doc['id']}/reindex/")
    assert response.status_code == 202 and response.json()["version"] == 2
    again = wait_document(client, doc["id"])
    assert again["status"] == "ready" and again["version"] == 2
    chunks = _chunks(doc["id"])
    assert len(chunks) == ready["chunk_count"] == again["chunk_count"]
    assert not old_ids & {c.pk for c in chunks}
    assert {c.metadata["version"] for c in chunks} == {2}


def test_update_bumps_version_and_replaces_content(client, collection, live_db):
    doc = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Old text about kettles."}).json()["documents"][0]
    wait_document(client, doc["id"])
    response = client.patch(f"/documents/{doc['id']}/", json={"text": "New text about teapots.", "metadata": {"v": 2}})
    assert response.status_code == 202, response.text
    done = wait_document(client, doc["id"])
    assert done["status"] == "ready" and done["version"] == 2 and done["metadata"] == {"v": 2}
    texts = " ".join(c.text for c in _chunks(doc["id"]))
    assert "teapots" in texts and "kettles" not in texts
    # Updating to content another document already has is a conflict, not a duplicate.
    other = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Other."}).json()["documents"][0]
    clash = client.patch(f"/documents/{doc['id']}/", json={"text": "Other."})
    assert clash.status_code == 409 and clash.json()["error"]["document"] == other["id"]


def test_listing_is_paginated_and_filters_by_status(client, collection, live_db):
    ids = [
        client.post(f"/collections/{collection['id']}/documents/", json={"text": f"Document number {i}."}).json()["documents"][0]["id"]
        for i in range(3)
    ]
    for i in ids:
        wait_document(client, i)
    page = client.get(f"/collections/{collection['id']}/documents/", params={"limit": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    ready = client.get(f"/collections/{collection['id']}/documents/", params={"status": "ready"}).json()
    assert sorted(d["id"] for d in ready["results"]) == ids
    failed = client.get(f"/collections/{collection['id']}/documents/", params={"status": "failed"}).json()
    assert failed["count"] == 0
    bad = client.get(f"/collections/{collection['id']}/documents/", params={"status": "nope"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
