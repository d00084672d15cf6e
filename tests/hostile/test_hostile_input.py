"""Hostile input through the real API: every case gets a 4xx naming what is wrong, or an
upload that ends `failed` with a reason; never a 500, a stuck document, or work that runs
unbounded (docs/access.md, "Input limits")."""
import io
import time
import zlib

import pytest
from django.conf import settings

from tests.helpers import upload_final, wait_document

pytestmark = pytest.mark.stack


def _error(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    for needle in needles:
        assert needle in error["message"] or needle in str(error.get("fields", "")), (needle, error)
    return error


# -- filters and metadata ----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/search/", "/query/"])
def test_oversize_and_malformed_filters_are_400s(client, collection, endpoint):
    base = {"collection": collection["id"], "query": "anything"}
    _error(client.post(endpoint, json={**base, "filters": {"lang": "x" * 2_000_000}}), 400,
           "SLUICE_FILTERS_MAX_BYTES")
    _error(client.post(endpoint, json={**base, "filters": {"lang": "x" * 1000}}), 400,
           "SLUICE_FILTER_VALUE_MAX_CHARS")
    _error(client.post(endpoint, json={**base, "filters": {f"k{i}": 1 for i in range(21)}}), 400, "at most 20")
    _error(client.post(endpoint, json={**base, "filters": {"lang": {"nested": "object"}}}), 400, "lang")
    _error(client.post(endpoint, json={**base, "filters": {"lang": list(range(101))}}), 400, "lang")
    _error(client.post(endpoint, json={**base, "filters": "lang=en"}), 400, "JSON object")


def test_oversize_and_deep_metadata_are_400s(client, collection):
    url = f"/collections/{collection['id']}/documents/"
    _error(client.post(url, json={"text": "hello", "metadata": {"blob": "x" * 2_000_000}}), 400,
           "SLUICE_METADATA_MAX_BYTES")
    deep: dict = {"leaf": 1}
    for _ in range(10):
        deep = {"d": deep}
    _error(client.post(url, json={"text": "hello", "metadata": deep}), 400, "SLUICE_METADATA_MAX_DEPTH")
    _error(client.post(url, files={"files": ("a.txt", b"hello there", "text/plain")},
                       data={"metadata": '{"blob": "' + "x" * 40_000 + '"}'}), 400, "SLUICE_METADATA_MAX_BYTES")
    document = client.post(url, json={"text": "A document to patch."}).json()["documents"][0]
    _error(client.patch(f"/documents/{document['id']}/", json={"metadata": {"blob": "y" * 100_000}}), 400,
           "SLUICE_METADATA_MAX_BYTES")


def test_only_filterable_metadata_is_copied_to_chunks(client, collection, live_db):
    from apps.documents.models import Chunk

    metadata = {"lang": "en", "year": 2024, "notes": "n" * 5000, "tags": ["a", "b"], "nested": {"k": "v"}}
    document = client.post(f"/collections/{collection['id']}/documents/",
                           json={"text": "Metadata stays with its document.", "metadata": metadata}).json()["documents"][0]
    assert wait_document(client, document["id"])["status"] == "ready"
    assert client.get(f"/documents/{document['id']}/").json()["metadata"] == metadata  # stored whole, once
    copied = set(Chunk.objects.filter(document_id=document["id"]).values_list("document_metadata", flat=True)[0])
    assert copied == {"lang", "year"}
    hits = client.post("/search/", json={"collection": collection["id"], "query": "metadata",
                                         "filters": {"lang": "en", "year": 2024}}).json()["results"]
    assert [h["document_id"] for h in hits] == [document["id"]]


# -- queries, top_k, pagination -------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/search/", "/query/"])
def test_query_limits_and_odd_queries(client, corpus, collection, endpoint):
    base = {"collection": collection["id"]}
    _error(client.post(endpoint, json={**base, "query": "q" * (settings.SLUICE_QUERY_MAX_CHARS + 1)}), 400, "query")
    for top_k in (0, settings.SLUICE_SEARCH_MAX_TOP_K + 1, "many"):
        _error(client.post(endpoint, json={**base, "query": "bread", "top_k": top_k}), 400, "top_k")
    odd = ["!!!", "the of and", "a\x00b", "\u202eevil\u202c", "'; DROP TABLE documents_chunk; --", "&|!():*<->",
           "\"unterminated", "-", "OR OR OR", "🍞🌋", "x" * settings.SLUICE_QUERY_MAX_CHARS]
    for query in odd:
        response = client.post(endpoint, json={**base, "query": query})
        assert response.status_code in (200, 400), (query, response.status_code, response.text[:300])


def test_pagination_limit_is_bounded(client, collection):
    url = f"/collections/{collection['id']}/documents/"
    _error(client.get(url, params={"limit": settings.SLUICE_PAGE_MAX_LIMIT + 1}), 400, "SLUICE_PAGE_MAX_LIMIT")
    _error(client.get("/collections/", params={"limit": "lots"}), 400, "limit")
    assert client.get(url, params={"limit": settings.SLUICE_PAGE_MAX_LIMIT}).status_code == 200


# -- uploads that must end failed with a reason (or ready), within bounds -----------------


@pytest.mark.parametrize(("data", "content_type", "reason"), [
    (b"\xff\xfe\x00\x00garbage\x80\x81", "text/plain", "not valid"),
    (bytes(range(256)) * 64, "text/plain", "not valid"),
    ("<html><head><meta charset='utf-16'></head><body><p>hi</p></body></html>".encode(), "text/html", ""),
])
def test_binary_and_charset_tricks_fail_with_a_reason(client, collection, data, content_type, reason):
    ext = "html" if content_type == "text/html" else "txt"
    response = client.post(f"/collections/{collection['id']}/documents/",
                           files={"files": (f"tricky.{ext}", data, content_type)})
    if response.status_code != 202:  # refused at the door is fine too, with a reason
        assert 400 <= response.status_code < 500 and response.json()["error"]["message"]
        return
    done = wait_document(client, response.json()["documents"][0]["id"], timeout=60)
    assert done["status"] in ("ready", "failed") and (done["status"] == "ready" or reason in done["error"])


def test_empty_file_is_a_400(client, collection):
    response = client.post(f"/collections/{collection['id']}/documents/",
                           files={"files": ("empty.txt", b"", "text/plain")})
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def _pdf_bytes(*, pages: int = 1, stream: bytes | None = None) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, NameObject

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    if stream is not None:
        content = DecodedStreamObject()
        content.set_data(stream)
        content = content.flate_encode()
        writer.pages[0][NameObject("/Contents")] = writer._add_object(content)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_with_too_many_pages_fails_with_the_limit(client, collection):
    data = _pdf_bytes(pages=settings.SLUICE_PDF_MAX_PAGES + 1)
    done = upload_final(client, collection, files={"files": ("pages.pdf", data, "application/pdf")})
    assert done["status"] == "failed" and f"at most {settings.SLUICE_PDF_MAX_PAGES:,} pages" in done["error"], done


def test_zip_bomb_like_pdf_ends_final(client, collection):
    # A page whose content stream inflates from ~50 KB to 50 MB.
    stream = b"BT /F1 12 Tf 10 10 Td (x) Tj ET\n" + b" " * 50_000_000
    data = _pdf_bytes(stream=stream)
    assert len(data) < 200_000 and len(zlib.compress(b" " * 1000)) < 100
    started = time.monotonic()
    done = upload_final(client, collection, files={"files": ("bomb.pdf", data, "application/pdf")}, timeout=120)
    assert time.monotonic() - started < 120
    assert done["status"] == "ready" or done["error"]
