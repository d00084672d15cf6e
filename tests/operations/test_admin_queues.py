"""The admin's queue page over the real web server: depth and oldest message age per
priority list, live workers, unacknowledged work; purge and requeue with confirmation."""
import json
import re
import time

import httpx
import pytest

from apps.operations.queues import unacked_list
from ragproject.celery import app
from tests.helpers import admin_post, worker_restart
from workers.queues import Queue
from workers.state import broker_redis

pytestmark = pytest.mark.stack


def _section(page: str, queue: str) -> str:
    return re.search(rf'<div class="module" id="queue-{queue}">(.*?)</div>', page, re.S).group(1)


def test_queue_page_shows_waiting_work_and_purge_removes_it(stack, admin, live_db):
    anonymous = httpx.get(str(admin.base_url) + "/admin/queues/")
    page = admin.get("/admin/queues/")
    assert page.status_code == 200
    for queue in Queue:
        assert f'id="queue-{queue.value}"' in page.text
    assert 'id="flower-link"' in page.text
    overload = re.search(r'<div class="module" id="overload">(.*?)</div>', page.text, re.S).group(1)
    assert "shedding ON" in overload and "/admin/operations/overloadpolicy/" in overload
    assert all(f"<td>{name}</td>" in overload for name in ("critical", "interactive", "batch"))

    stack.workers[Queue.GENERATE].stop()  # nothing consumes `generate` meanwhile
    try:
        for _ in range(3):
            app.send_task("sluice.test.never_runs", queue=Queue.GENERATE.value, priority=9)
        time.sleep(1.1)
        section = _section(admin.get("/admin/queues/").text, "generate")
        assert "3 waiting, 0 live workers" in section and "none alive" in section
        row = re.search(r"<code>generate:9</code>.*?</tr>", section, re.S).group(0)
        age = float(re.search(r"<td>([\d.]+)s</td>", row).group(1))
        assert age >= 1.0 and "sluice.test.never_runs" in row

        confirm = admin.get("/admin/queues/purge/?key=generate:9")
        assert "Delete the <strong>3</strong> messages waiting in <code>generate:9</code>" in confirm.text
        assert broker_redis().llen("generate:9") == 3  # nothing happens before confirming
        done = admin_post(admin, "/admin/queues/purge/", {"key": "generate:9", "confirm": "yes"})
        assert done.status_code == 302
        assert broker_redis().llen("generate:9") == 0
        assert "Purged 3 waiting message(s) from generate:9" in admin.get("/admin/queues/").text
    finally:
        worker_restart(stack, Queue.GENERATE)
    bogus = admin_post(admin, "/admin/queues/purge/", {"key": "celery", "confirm": "yes"})
    assert bogus.status_code == 302 and "is not a queue list" in admin.get("/admin/queues/").text
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["location"]


def _redelivered(tag: str, task_id: str) -> bool:
    """Whether the message is back on the queue or re-taken, flagged as redelivered."""
    redis = broker_redis()
    raws = [m for m in redis.lrange("retrieve", 0, -1) if task_id.encode() in m]
    entry = redis.hget("unacked", tag)
    messages = [json.loads(raw) for raw in raws] + ([json.loads(entry)[0]] if entry else [])
    return any(message["headers"].get("redelivered") for message in messages)


def test_unacknowledged_work_is_shown_and_requeued_after_confirmation(stack, admin, live_db):
    # A task with an ETA is taken by a worker at once and held unacknowledged until then.
    result = app.send_task("sluice.retrieval.search", queue=Queue.RETRIEVE.value, countdown=3600, kwargs={
        "collection_ids": [], "query": "held", "mode": "text", "top_k": 1, "filters": {}})
    try:
        deadline = time.monotonic() + 10
        while not [u for u in unacked_list() if u.task_id == result.id]:
            assert time.monotonic() < deadline, "the worker did not take the ETA task"
            time.sleep(0.1)
        [held] = [u for u in unacked_list() if u.task_id == result.id]
        assert not _redelivered(held.tag, result.id)
        section = _section(admin.get("/admin/queues/").text, "retrieve")
        assert result.id in section and "sluice.retrieval.search" in section

        review = admin.get("/admin/queues/requeue/?older_than_s=0")
        assert result.id in review.text and "would run twice" in review.text
        assert [u.tag for u in unacked_list() if u.task_id == result.id] == [held.tag]  # untouched so far
        done = admin_post(admin, "/admin/queues/requeue/", {"older_than_s": "0", "confirm": "yes"})
        assert done.status_code == 302
        # Back on the queue, marked redelivered (and soon taken again by the worker).
        assert _redelivered(held.tag, result.id)
        assert "Requeued 1 unacknowledged message(s)" in admin.get("/admin/queues/").text
    finally:
        result.revoke()


def test_dead_letter_list_shows_messages_and_retry_or_discard_them(stack, admin, live_db):
    import uuid

    from celery.result import AsyncResult

    from workers.recovery import dead_letter, dead_letters

    retried, discarded = str(uuid.uuid4()), str(uuid.uuid4())
    for task_id in (retried, discarded):
        dead_letter(task_name="sluice.operations.ping", task_id=task_id, queue=Queue.RETRIEVE.value,
                    args=("from the dead-letter list",), kwargs={}, reason="its worker died 3 times (drill)")
    section = re.search(r'<div class="module" id="dead-letter">(.*?)</div>', admin.get("/admin/queues/").text,
                        re.S).group(1)
    assert retried in section and discarded in section and "its worker died 3 times (drill)" in section

    assert admin_post(admin, "/admin/queues/dead-letter/", {"task_id": retried, "action": "retry"}).status_code == 302
    assert AsyncResult(retried).get(timeout=30)["payload"] == "from the dead-letter list"  # it ran again
    assert admin_post(admin, "/admin/queues/dead-letter/", {"task_id": discarded, "action": "discard"}).status_code == 302
    remaining = {entry["task_id"] for entry in dead_letters()}
    assert retried not in remaining and discarded not in remaining
    section = re.search(r'<div class="module" id="dead-letter">(.*?)</div>', admin.get("/admin/queues/").text,
                        re.S).group(1)
    assert retried not in section and discarded not in section
