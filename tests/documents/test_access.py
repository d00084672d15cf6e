"""Per-collection access over the real API: a second user's key cannot list, search,
query (answers repeated or cached included) or read task results of the first user's
private collection; shares grant exactly read or write; losing access closes everything."""
import json
import time

import pytest
from django.contrib.auth.models import Group

from apps.documents.models import Chunk
from tests.helpers import wait_document

pytestmark = pytest.mark.stack

SECRET = "The launch code of project Heron is amber-seven-falcon."
QUESTION = "What is the launch code of project Heron?"


def _upload(api, collection_id: int, title: str, text: str) -> int:
    response = api.post(f"/collections/{collection_id}/documents/", json={"title": title, "text": text})
    assert response.status_code == 202, response.text
    document_id = response.json()["documents"][0]["id"]
    assert wait_document(api, document_id)["status"] == "ready"
    return document_id


def _task_result(api, task_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"/tasks/{task_id}/")
        assert response.status_code == 200, response.text
        if response.json()["state"] == "SUCCESS" or time.monotonic() > deadline:
            return response.json()
        time.sleep(0.1)


def _stream(api, body: dict):
    with api.stream("POST", "/query/", json=body) as response:
        response.read()
        return response


def _not_found(response):
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert "amber" not in response.text


@pytest.fixture
def private(key_client):
    """User A's private collection holding the secret, and A's client."""
    alice, _, _ = key_client()
    collection = alice.post("/collections/", json={"name": "private"}).json()
    document_id = _upload(alice, collection["id"], "Heron", SECRET)
    return alice, collection["id"], document_id


def test_another_user_cannot_reach_a_private_collection_by_any_endpoint(private, key_client, live_db):
    alice, collection_id, document_id = private
    # Alice asks the same question twice (the second may come from an answer cache) and once async.
    first = alice.post("/query/", json={"collection": collection_id, "query": QUESTION})
    second = alice.post("/query/", json={"collection": collection_id, "query": QUESTION})
    for answer in (first, second):
        assert answer.status_code == 200, answer.text
        assert "amber-seven-falcon" in answer.json()["answer"]
    accepted = alice.post("/query/", json={"collection": collection_id, "query": QUESTION, "async": True}).json()
    assert "amber" in json.dumps(_task_result(alice, accepted["task_id"])["result"])

    bob, _, _ = key_client()
    listed = bob.get("/collections/").json()
    assert collection_id not in {c["id"] for c in listed["results"]}
    _not_found(bob.get(f"/collections/{collection_id}/"))
    _not_found(bob.get(f"/collections/{collection_id}/documents/"))
    _not_found(bob.post(f"/collections/{collection_id}/documents/", json={"text": "intrusion"}))
    _not_found(bob.get(f"/documents/{document_id}/"))
    _not_found(bob.patch(f"/documents/{document_id}/", json={"title": "mine"}))
    _not_found(bob.delete(f"/documents/{document_id}/"))
    _not_found(bob.post(f"/documents/{document_id}/reindex/"))
    _not_found(bob.delete(f"/collections/{collection_id}/"))
    _not_found(bob.get(f"/collections/{collection_id}/shares/"))
    _not_found(bob.post("/search/", json={"collection": collection_id, "query": QUESTION}))
    for mode in ({}, {"async": True}, {"stream": True}):
        _not_found(bob.post("/query/", json={"collection": collection_id, "query": QUESTION, **mode}))
    _not_found(bob.get(f"/tasks/{accepted['task_id']}/"))
    _not_found(bob.get(f"/tasks/{first.json()['query_id']}/"))

    # The same question in Bob's own collection: nothing of Alice's comes back, whatever is cached.
    own = bob.post("/collections/", json={"name": "mine"}).json()
    _upload(bob, own["id"], "Herons", "Herons are long-legged birds that wade in shallow water.")
    for body in ({}, {"async": True}):
        response = bob.post("/query/", json={"collection": own["id"], "query": QUESTION, **body})
        answer = response.json() if not body else _task_result(bob, response.json()["task_id"])["result"]
        assert "amber" not in json.dumps(answer)
        cited = {c["chunk_id"] for c in answer["citations"]}
        assert cited and not Chunk.objects.filter(pk__in=cited, collection_id=collection_id).exists()
    hits = bob.post("/search/", json={"collection": own["id"], "query": QUESTION, "top_k": 50}).json()["results"]
    assert hits and all("amber" not in hit["text"] for hit in hits)
    streamed = _stream(bob, {"collection": own["id"], "query": QUESTION, "stream": True})
    assert streamed.status_code == 200 and "amber" not in streamed.text


def test_sharing_grants_exactly_read_or_write(private, key_client, live_db):
    alice, collection_id, document_id = private
    bob, bob_user, _ = key_client()
    share = alice.post(f"/collections/{collection_id}/shares/", json={"user": bob_user.username, "access": "read"})
    assert share.status_code == 201, share.text
    share_id = share.json()["id"]

    # Read: list, open, search, query (sync, async, stream), see documents.
    listed = {c["id"]: c for c in bob.get("/collections/").json()["results"]}
    assert listed[collection_id]["access"] == "read" and listed[collection_id]["owner"] != bob_user.username
    assert bob.get(f"/collections/{collection_id}/documents/").json()["count"] == 1
    assert bob.get(f"/documents/{document_id}/").status_code == 200
    hits = bob.post("/search/", json={"collection": collection_id, "query": QUESTION}).json()["results"]
    assert hits[0]["document_id"] == document_id
    assert "amber" in bob.post("/query/", json={"collection": collection_id, "query": QUESTION}).json()["answer"]
    accepted = bob.post("/query/", json={"collection": collection_id, "query": QUESTION, "async": True}).json()
    assert _task_result(bob, accepted["task_id"])["state"] == "SUCCESS"
    assert _stream(bob, {"collection": collection_id, "query": QUESTION, "stream": True}).status_code == 200

    # ... but not write: 403 naming what is missing.
    for response in (
        bob.post(f"/collections/{collection_id}/documents/", json={"text": "bob's text"}),
        bob.patch(f"/documents/{document_id}/", json={"title": "renamed"}),
        bob.delete(f"/documents/{document_id}/"),
        bob.post(f"/documents/{document_id}/reindex/"),
    ):
        assert response.status_code == 403, response.text
        assert "write access" in response.json()["error"]["message"]
    # Owner-only: renaming, deleting, sharing.
    for response in (
        bob.patch(f"/collections/{collection_id}/", json={"name": "bob's now"}),
        bob.delete(f"/collections/{collection_id}/"),
        bob.get(f"/collections/{collection_id}/shares/"),
        bob.post(f"/collections/{collection_id}/shares/", json={"user": bob_user.username, "access": "write"}),
    ):
        assert response.status_code == 403, response.text

    # Write: documents can be added and changed; the collection itself stays the owner's.
    upgraded = alice.post(f"/collections/{collection_id}/shares/", json={"user": bob_user.username, "access": "write"})
    assert upgraded.status_code == 200 and upgraded.json()["id"] == share_id
    assert bob.get(f"/collections/{collection_id}/").json()["access"] == "write"
    added = _upload(bob, collection_id, "Bob's notes", "Bob notes that herons nest in colonies.")
    assert bob.patch(f"/documents/{added}/", json={"title": "Bob's heron notes"}).status_code == 200
    assert bob.post(f"/documents/{document_id}/reindex/").status_code == 202
    assert bob.delete(f"/documents/{added}/").status_code == 204
    assert bob.patch(f"/collections/{collection_id}/", json={"name": "bob's now"}).status_code == 403

    # Unshared: everything is closed again, the result of Bob's earlier async query included.
    assert alice.delete(f"/collections/{collection_id}/shares/{share_id}/").status_code == 204
    _not_found(bob.get(f"/collections/{collection_id}/"))
    _not_found(bob.post("/search/", json={"collection": collection_id, "query": QUESTION}))
    _not_found(bob.get(f"/tasks/{accepted['task_id']}/"))


def test_group_shares_and_bad_share_requests(private, key_client, live_db):
    alice, collection_id, _ = private
    carol, carol_user, _ = key_client()
    group = Group.objects.create(name=f"readers-{carol_user.username}")
    carol_user.groups.add(group)
    _not_found(carol.post("/search/", json={"collection": collection_id, "query": QUESTION}))
    response = alice.post(f"/collections/{collection_id}/shares/", json={"group": group.name, "access": "read"})
    assert response.status_code == 201, response.text
    assert response.json()["group"] == group.name and response.json()["user"] is None
    assert carol.post("/search/", json={"collection": collection_id, "query": QUESTION}).status_code == 200
    assert carol.post(f"/collections/{collection_id}/documents/", json={"text": "x"}).status_code == 403
    assert [s["group"] for s in alice.get(f"/collections/{collection_id}/shares/").json()] == [group.name]

    for body, field in (
        ({"user": "no-such-user", "access": "read"}, "user"),
        ({"group": group.name, "user": carol_user.username, "access": "read"}, "user"),
        ({"access": "read"}, "user"),
        ({"group": group.name, "access": "admin"}, "access"),
    ):
        response = alice.post(f"/collections/{collection_id}/shares/", json=body)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]["fields"]
