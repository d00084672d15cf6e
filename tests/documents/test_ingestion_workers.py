"""Ingestion against real embed workers: queued status, priorities, kill -9 recovery,
the redelivery cap and the embedding cache."""
import os
import signal
import time

import psutil
import pytest

from apps.documents.models import Chunk, Document
from apps.documents.services.embedding import embedding_cache_stats
from apps.documents.services.ingestion import Step, document_ingest_step
from apps.operations.tasks import ping
from tests.helpers import wait_document, worker_restart
from workers.queues import Priority, Queue

pytestmark = pytest.mark.stack


def _upload(client, collection, text, **extra):
    response = client.post(f"/collections/{collection['id']}/documents/", json={"text": text, **extra})
    assert response.status_code == 202, response.text
    return response.json()["documents"][0]


SLOW_INGEST = ("SLUICE_EMBEDDING_HASH_DELAY", "SLUICE_INGEST_STEP_CHUNKS")


def test_status_is_visible_while_queued_and_progresses_when_a_worker_comes(client, collection, stack, admin, live_db):
    stack.stop_part("worker-embed")
    try:
        doc = _upload(client, collection, "Queued while no worker runs.")
        time.sleep(0.5)
        body = client.get(f"/documents/{doc['id']}/").json()
        assert body["status"] == "queued" and body["progress"] == 0.0
        health = admin.get("/api/v1/health/").json()  # queue depths: staff only
        assert health["queues"]["embed"]["depth"] >= 1
    finally:
        stack.start_part("worker-embed")
    assert wait_document(client, doc["id"])["status"] == "ready"


def test_interactive_priority_overtakes_a_bulk_backlog(stack):
    stack.stop_part("worker-embed")
    try:
        bulk = [ping.apply_async(args=[f"bulk{i}"], queue=Queue.EMBED.value, priority=int(Priority.BULK)) for i in range(5)]
        interactive = ping.apply_async(args=["interactive"], queue=Queue.EMBED.value, priority=int(Priority.INTERACTIVE))
    finally:
        stack.start_part("worker-embed")
    first_bulk = min(r.get(timeout=60)["at"] for r in bulk)
    assert interactive.get(timeout=60)["at"] < first_bulk


def test_kill_9_mid_document_loses_and_duplicates_nothing(client, collection, stack, live_db):
    # Slow the embedder (a configured backend option, not a patch) so the kill lands mid-document.
    worker_restart(stack, Queue.EMBED, SLUICE_EMBEDDING_HASH_DELAY="0.25", SLUICE_INGEST_STEP_CHUNKS="8")
    try:
        text = "\n\n".join(f"Paragraph {i} talks about topic {i} in several plain words." for i in range(400))
        doc = _upload(client, collection, text)
        deadline = time.monotonic() + 60
        while True:
            row = Document.objects.get(pk=doc["id"])
            if row.status == "embedding" and row.chunks_embedded >= 16:
                break
            assert time.monotonic() < deadline, f"ingestion did not start: {row.status}"
            time.sleep(0.05)
        worker = stack.workers[Queue.EMBED]
        pid = worker.pid()
        victims = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)
        interrupted = Document.objects.get(pk=doc["id"])
        assert interrupted.status == "embedding" and interrupted.chunks_embedded < interrupted.chunks_total
        assert Chunk.objects.filter(document_id=doc["id"]).count() == 0  # nothing half-written

        # The new worker redelivers the unacknowledged step.
        worker_restart(stack, Queue.EMBED, clear=("SLUICE_EMBEDDING_HASH_DELAY",), SLUICE_INGEST_STEP_CHUNKS="8")
        done = wait_document(client, doc["id"], timeout=120)
        assert done["status"] == "ready", done
        chunks = Chunk.objects.filter(document_id=doc["id"])
        ordinals = list(chunks.values_list("ordinal", flat=True))
        assert len(ordinals) == done["chunk_count"] == done["chunks_total"] == len(set(ordinals))
        assert sorted(ordinals) == list(range(len(ordinals)))
    finally:
        worker_restart(stack, Queue.EMBED, clear=SLOW_INGEST)


def test_a_step_whose_worker_keeps_dying_ends_failed(client, collection, stack, live_db, settings):
    stack.stop_part("worker-embed")
    try:
        doc = _upload(client, collection, "This document's worker dies every time.")
        # Simulate the deliveries that never finished: the attempt counter is what a
        # worker killed mid-step leaves behind.
        Document.objects.filter(pk=doc["id"]).update(attempts=settings.SLUICE_INGEST_MAX_ATTEMPTS)
        assert document_ingest_step(document_id=doc["id"], version=1) == Step.FAILED
    finally:
        stack.start_part("worker-embed")
    failed = Document.objects.get(pk=doc["id"])
    assert failed.status == "failed" and "gave up after" in failed.error and "reindex" in failed.error
    assert Chunk.objects.filter(document_id=doc["id"]).count() == 0
    # A reindex starts over and succeeds.
    assert client.post(f"/documents/{doc['id']}/reindex/").status_code == 202
    assert wait_document(client, doc["id"])["status"] == "ready"


def test_identical_chunks_are_not_embedded_twice(client, collection, live_db):
    doc = _upload(client, collection, "Cached sentence one.\n\nCached sentence two.")
    assert wait_document(client, doc["id"])["status"] == "ready"
    before = embedding_cache_stats()
    client.post(f"/documents/{doc['id']}/reindex/")
    assert wait_document(client, doc["id"])["status"] == "ready"
    after = embedding_cache_stats()
    assert after["misses"] == before["misses"]
    assert after["hits"] > before["hits"]
