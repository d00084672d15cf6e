"""No document stays in a non-final state: hostile input and unexpected errors end
``failed`` with a reason, transient errors retry until they pass, and an upload whose
enqueue failed is queued by the reconciler. Faults are injected through fault points
(workers/faults.py), not by patching our code."""
import time

import pytest

from apps.documents.models import Document
from tests.helpers import wait_document
from workers.faults import fault_arm, fault_disarm, fault_hits

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("charset", ["rot13", "hex"])
def test_html_with_a_transform_as_charset_fails_with_the_reason(client, collection, charset):
    html = f'<html><head><meta charset="{charset}"></head><body><p>Hello there.</p></body></html>'
    upload = client.post(f"/collections/{collection['id']}/documents/",
                         json={"title": "page", "text": html, "format": "html"})
    assert upload.status_code == 202, upload.text
    done = wait_document(client, upload.json()["documents"][0]["id"], timeout=30)
    assert done["status"] == "failed"
    assert f"unknown character set '{charset}' in <meta charset>" in done["error"]


def _ready_document(client, collection, text: str) -> int:
    """A ready document: faults are armed for it, then a reindex runs its steps again."""
    upload = client.post(f"/collections/{collection['id']}/documents/", json={"text": text})
    document_id = upload.json()["documents"][0]["id"]
    assert wait_document(client, document_id)["status"] == "ready"
    return document_id


def test_an_unexpected_error_in_a_step_fails_the_document_with_stage_and_error(client, collection):
    document_id = _ready_document(client, collection, "Parsing will blow up.")
    fault_arm("ingest.parse", action="raise", document_id=document_id)
    try:
        assert client.post(f"/documents/{document_id}/reindex/").status_code == 202
        done = wait_document(client, document_id, timeout=30)
    finally:
        fault_disarm("ingest.parse")
    assert done["status"] == "failed", done
    assert "ingestion failed while parsing: InjectedFault" in done["error"] and "Reindex" in done["error"]


def test_transient_errors_retry_with_backoff_until_they_pass(client, collection):
    document_id = _ready_document(client, collection, "Redis blinks during embedding.")
    fault_arm("ingest.embed", action="transient", document_id=document_id)
    try:
        assert client.post(f"/documents/{document_id}/reindex/").status_code == 202
        deadline = time.monotonic() + 30
        while fault_hits("ingest.embed") < 2:  # failed, waited, failed again
            assert time.monotonic() < deadline, "the step was not retried"
            time.sleep(0.1)
        assert Document.objects.get(pk=document_id).status not in ("ready", "failed")
    finally:
        fault_disarm("ingest.embed")
    assert wait_document(client, document_id, timeout=30)["status"] == "ready"


def test_an_upload_whose_enqueue_failed_is_queued_by_the_reconciler(client, collection, settings):
    fault_arm("ingest.enqueue", action="transient")  # the broker "is down" for every enqueue
    try:
        upload = client.post(f"/collections/{collection['id']}/documents/", json={"text": "Acknowledged, not queued."})
        assert upload.status_code == 202, upload.text  # the client's 202 stands
        document_id = upload.json()["documents"][0]["id"]
        time.sleep(1)
        assert fault_hits("ingest.enqueue") >= 1
        assert Document.objects.get(pk=document_id).status == "queued"
    finally:
        fault_disarm("ingest.enqueue")
    started = time.monotonic()
    done = wait_document(client, document_id, timeout=60)
    assert done["status"] == "ready", done
    # Picked up once it had been stuck for SLUICE_INGEST_STUCK_AFTER, by the next reconciler run.
    assert time.monotonic() - started < settings.SLUICE_INGEST_STUCK_AFTER + 4 * settings.SLUICE_RECONCILE_INTERVAL + 15
