"""The admin over the real web server: documents (status, error, chunk count; retry,
reindex and delete through the services), read-only searchable chunks, the query log's
filters."""
import pytest

from apps.documents.models import Collection, Document
from tests.helpers import admin_post, wait_document

pytestmark = pytest.mark.stack


def _action(admin, action: str, ids: list[int]):
    return admin_post(admin, "/admin/documents/document/",
                      {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"})


def test_document_list_and_actions(admin, client, collection, live_db):
    upload = client.post(f"/collections/{collection['id']}/documents/", json={"documents": [
        {"title": "Kites", "text": "Kites fly on windy days above the beach."},
        {"title": "Empty page", "text": "<html><script>var x = 1;</script></html>", "format": "html"},
    ]}).json()["documents"]
    good, bad = (wait_document(client, d["id"]) for d in upload)
    assert good["status"] == "ready" and bad["status"] == "failed"

    listing = admin.get(f"/admin/documents/document/?collection__id__exact={collection['id']}")
    assert listing.status_code == 200
    assert "Kites" in listing.text and "no text to index" in listing.text  # status and error shown
    actions = listing.text
    assert "retry_failed" in actions and "reindex" in actions and "delete_with_chunks" in actions
    assert 'value="delete_selected"' not in actions  # the bulk delete that bypasses the service

    assert _action(admin, "retry_failed", [good["id"], bad["id"]]).status_code == 302
    assert Document.objects.get(pk=bad["id"]).version == 2  # retried
    assert Document.objects.get(pk=good["id"]).version == 1  # not failed: left alone
    assert _action(admin, "reindex", [good["id"]]).status_code == 302
    assert wait_document(client, good["id"])["version"] == 2

    version = Collection.objects.get(pk=collection["id"]).content_version
    assert _action(admin, "delete_with_chunks", [good["id"]]).status_code == 302
    assert not Document.objects.filter(pk=good["id"]).exists()
    assert Collection.objects.get(pk=collection["id"]).content_version > version  # caches see the change


def test_chunks_are_searchable_and_read_only(admin, client, collection, live_db):
    document = client.post(f"/collections/{collection['id']}/documents/",
                           json={"title": "Tides", "text": "Spring tides follow the full moon."}).json()["documents"][0]
    assert wait_document(client, document["id"])["status"] == "ready"
    found = admin.get("/admin/documents/chunk/?q=spring+tides")
    assert found.status_code == 200 and "Spring tides follow the full moon" in found.text
    chunk_id = Document.objects.get(pk=document["id"]).chunks.first().pk
    page = admin.get(f"/admin/documents/chunk/{chunk_id}/change/")
    assert page.status_code == 200 and 'name="text"' not in page.text  # no editable field
    assert admin.get("/admin/documents/chunk/add/").status_code == 403


def test_query_log_filters(admin, client, collection, live_db):
    client.post("/query/", json={"collection": collection["id"], "query": "anything logged?"})
    for query in ("outcome__exact=ok", "generator__exact=extractive", "served_by__exact=extractive",
                  "latency=lt100", "latency=100-1000", "latency=none"):
        response = admin.get(f"/admin/query/querylog/?{query}")
        assert response.status_code == 200, query
    fast_or_slow = admin.get("/admin/query/querylog/?outcome__exact=ok&latency=gt5000")
    assert "anything logged?" not in fast_or_slow.text
    assert "anything logged?" in admin.get("/admin/query/querylog/?outcome__exact=ok").text
