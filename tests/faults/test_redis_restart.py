"""Redis (broker, results, caches, state) killed with ``kill -9`` under search load and
uploads, then restarted by ``stack up``: 503 + Retry-After meanwhile, never a 500,
searches back within seconds, and every acknowledged upload ends ready."""
import os
import signal
import threading
import time
import uuid

import httpx
import pytest

from apps.documents.models import Chunk, Document

from tests.helpers import stack_recover

from .conftest import SearchLoad

pytestmark = pytest.mark.stack


def test_redis_kill_9_no_500_no_lost_upload(recovered, searchable):
    client, collection_id = searchable
    stack = recovered
    acknowledged: list[int] = []
    upload_statuses: list[int] = []
    stop = threading.Event()

    def uploads():
        while not stop.is_set():
            text = f"Upload {uuid.uuid4().hex}: the harbour master counts the boats at dawn."
            try:
                response = client.post(f"/collections/{collection_id}/documents/", json={"text": text})
            except httpx.TransportError:
                upload_statuses.append(0)
                continue
            upload_statuses.append(response.status_code)
            if response.status_code == 202:
                acknowledged.append(response.json()["documents"][0]["id"])
            stop.wait(0.2)

    uploader = threading.Thread(target=uploads, daemon=True)
    with SearchLoad(client, collection_id=collection_id) as load:
        uploader.start()
        time.sleep(2)
        os.kill(stack.redis.pid(), signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3)
        stack_recover(stack)
        back_at = time.monotonic()
        recovery = load.wait_success_after(back_at, timeout=30)
        time.sleep(2)
        stop.set()
        uploader.join(timeout=30)
    statuses = load.statuses()
    assert 500 not in statuses and 500 not in upload_statuses, load.bodies
    assert set(statuses) <= {200, 503}, (statuses, load.bodies)
    assert load.statuses(since=killed_at + 0.5, until=back_at)[503] > 0
    assert set(upload_statuses) <= {202, 503}, upload_statuses
    assert recovery is not None and recovery < 10, recovery

    # Every acknowledged document ends ready (the queue may have lost its message with
    # Redis: the reconciler queues it again), once, with its chunks exactly once.
    assert acknowledged
    deadline = time.monotonic() + 90
    while Document.objects.filter(pk__in=acknowledged).exclude(status="ready").exists():
        assert time.monotonic() < deadline, list(
            Document.objects.filter(pk__in=acknowledged).exclude(status="ready").values("id", "status", "error"))
        time.sleep(0.5)
    assert Document.objects.filter(pk__in=acknowledged).count() == len(set(acknowledged))
    for document in Document.objects.filter(pk__in=acknowledged):
        ordinals = sorted(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
        assert ordinals == list(range(document.chunk_count)), document.pk
