"""Time and tenancy bounds: a search's SQL stops at its request's deadline (Postgres
``statement_timeout``), and the embedding cache never answers across collections."""
import threading
import time

import psycopg
import pytest

from devstack.postgres import SUPERUSER
from tests.helpers import wait_document

pytestmark = pytest.mark.stack

LOCKED = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
          " WHERE c.relname = 'documents_chunk' AND l.mode = 'AccessExclusiveLock' AND l.granted")
SEARCH_WAITING = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND wait_event_type = 'Lock'"
                  " AND query LIKE 'WITH %%vector_hits AS%%'")  # (the query text is cut at 1 KB)


def test_a_search_stops_in_postgres_at_its_deadline(stack, client, corpus, collection):
    """A table lock makes every search statement wait (on the primary and, replayed, on the
    replicas): with the deadline as statement_timeout, Postgres cancels them instead of
    keeping backends busy until the lock goes."""
    nodes = [stack.primary, *stack.replicas]
    locker = psycopg.connect(**stack.primary.conninfo(SUPERUSER, "sluice"))
    watchers = [psycopg.connect(**node.conninfo(SUPERUSER, "sluice"), autocommit=True) for node in nodes]
    response: dict = {}
    try:
        locker.execute("LOCK TABLE documents_chunk IN ACCESS EXCLUSIVE MODE")
        watchers[0].execute("SELECT pg_switch_wal()")  # flush the lock's WAL record to the replicas now
        settle = time.monotonic() + 15
        while not all(w.execute(LOCKED).fetchone()[0] for w in watchers):  # replayed on every replica
            assert time.monotonic() < settle, "the table lock did not reach the replicas"
            time.sleep(0.05)
        request = threading.Thread(target=lambda: response.update(r=client.post("/search/", json={
            "collection": collection["id"], "query": "bread", "deadline_ms": 1500})))
        request.start()
        # While the deadline runs, searches are waiting on the lock somewhere.
        deadline = time.monotonic() + 10
        waiting = 0
        while time.monotonic() < deadline and not waiting:
            waiting = sum(w.execute(SEARCH_WAITING).fetchone()[0] for w in watchers)
            time.sleep(0.05)
        assert waiting, f"the search never waited in Postgres: {response}"
        request.join(timeout=30)
        # Past the deadline, and each failover retry's minimum statement time.
        settle = time.monotonic() + 5
        while (still := sum(w.execute(SEARCH_WAITING).fetchone()[0] for w in watchers)) and time.monotonic() < settle:
            time.sleep(0.1)
    finally:
        locker.rollback()
        locker.close()
        for w in watchers:
            w.close()
    assert response["r"].status_code == 504, response["r"].text[:300]
    assert still == 0  # cancelled by statement_timeout, not left waiting for the lock


def test_the_embedding_cache_is_scoped_by_collection(client, collection, live_db):
    from apps.documents.services.embedding import embedding_cache_stats, embedding_scope, embeddings_cached

    text = f"A sentence only this collection has seen {time.time()}."
    document = client.post(f"/collections/{collection['id']}/documents/", json={"text": text}).json()["documents"][0]
    assert wait_document(client, document["id"])["status"] == "ready"
    own = embeddings_cached(texts=[text], scope=embedding_scope(collection["id"]))
    other = embeddings_cached(texts=[text], scope=embedding_scope(collection["id"] + 10_000))
    unscoped = embeddings_cached(texts=[text])
    assert own[0] is not None and other[0] is None and unscoped[0] is None
    assert embedding_cache_stats()["hits"] >= 1
