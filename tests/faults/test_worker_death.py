"""Workers killed for real: a killed embed worker's main process (its children orphaned)
gives its unacknowledged step back within seconds, not after the visibility timeout, and
the document finishes exactly as a clean run does; a message that kills its worker every
time is dead-lettered after SLUICE_TASK_MAX_DEATHS and its document fails with the reason."""
import os
import signal
import time

import psutil
import pytest
from django.conf import settings

from apps.documents.models import Chunk, Document
from tests.helpers import stack_recover, wait_document, worker_restart
from workers.faults import fault_arm, fault_disarm, fault_hits
from workers.queues import Queue
from workers.recovery import dead_letters


pytestmark = pytest.mark.stack

TEXT = "\n\n".join(f"Paragraph {i} of the keeper's log notes the wind, the tide and ship {i}." for i in range(400))


def _upload(client, collection_id: int, text: str, **extra) -> dict:
    response = client.post(f"/collections/{collection_id}/documents/", json={"text": text, **extra})
    assert response.status_code == 202, response.text
    return response.json()["documents"][0]


def test_embed_worker_main_killed_mid_document_finishes_within_60s(recovered, key_client, client, collection):
    stack = recovered
    # Slow the embedder (a configured backend option, not a patch) so the kill lands mid-document.
    worker_restart(stack, Queue.EMBED, SLUICE_EMBEDDING_HASH_DELAY="0.3", SLUICE_INGEST_STEP_CHUNKS="4")
    try:
        doc = _upload(client, collection["id"], TEXT)
        deadline = time.monotonic() + 60
        while not (row := Document.objects.get(pk=doc["id"])).chunks_embedded >= 8:
            assert time.monotonic() < deadline, row.status
            time.sleep(0.05)
        main = psutil.Process(stack.workers[Queue.EMBED].pid())
        os.kill(main.pid, signal.SIGKILL)  # the main process only, as the OOM killer or an operator would
        killed_at = time.monotonic()
        psutil.wait_procs([main], timeout=10)
        stack_recover(stack)  # the operator (or a restart policy) starts it again
        done = wait_document(client, doc["id"], timeout=60)
        finished_after = time.monotonic() - killed_at
    finally:
        worker_restart(stack, Queue.EMBED, clear=("SLUICE_EMBEDDING_HASH_DELAY", "SLUICE_INGEST_STEP_CHUNKS"))
    assert done["status"] == "ready", done
    assert finished_after < 60 < settings.CELERY_VISIBILITY_TIMEOUT, finished_after

    # The same text ingested cleanly elsewhere: the same chunks, each exactly once.
    other = client.post("/collections/", json={"name": f"clean-{doc['id']}"}).json()
    clean = wait_document(client, _upload(client, other["id"], TEXT)["id"])
    assert clean["status"] == "ready" and done["chunk_count"] == clean["chunk_count"]
    ordinals = sorted(Chunk.objects.filter(document_id=doc["id"]).values_list("ordinal", flat=True))
    assert ordinals == list(range(clean["chunk_count"]))
    assert list(Chunk.objects.filter(document_id=doc["id"]).order_by("ordinal").values_list("text", flat=True)) == \
        list(Chunk.objects.filter(document_id=clean["id"]).order_by("ordinal").values_list("text", flat=True))


def test_a_message_that_kills_its_worker_is_dead_lettered_and_its_document_fails(recovered, client, collection,
                                                                                  admin):
    doc = _upload(client, collection["id"], "A step that kills its worker process every time it runs.")
    fault_arm("ingest.embed", action="kill", document_id=doc["id"])
    try:
        failed = wait_document(client, doc["id"], timeout=90)
    finally:
        fault_disarm("ingest.embed")
    assert failed["status"] == "failed", failed
    assert f"worker died {settings.SLUICE_TASK_MAX_DEATHS} times" in failed["error"] and "reindex" in failed["error"]
    assert fault_hits("ingest.embed") == settings.SLUICE_TASK_MAX_DEATHS  # never run a 4th time
    entry = next(e for e in dead_letters() if e["kwargs"].get("document_id") == doc["id"])
    assert entry["task"] == "sluice.documents.ingest" and entry["queue"] == "embed"
    # The admin lists it among the dead-lettered documents and on the queue page.
    listed = admin.get("/admin/documents/document/?health=dead_lettered").text
    assert f"/admin/documents/document/{doc['id']}/change/" in listed
    assert entry["task_id"] in admin.get("/admin/queues/").text
    # A reindex (the admin's retry) starts over and succeeds.
    assert client.post(f"/documents/{doc['id']}/reindex/").status_code == 202
    assert wait_document(client, doc["id"])["status"] == "ready"
