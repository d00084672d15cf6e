"""The admin's charts on the real stack: the workers record the queue page's rolling
history in Redis (one sampler per interval), the queue page draws it as SVG from real
queues and counters (a stopped pool: depth, age and shed), the document list shows a
document's ingestion progress, the query log a latency histogram per class, and with
Redis down the queue page still renders, saying the history is unavailable."""
import os
import re
import signal
import time
import uuid

import pytest
from django.conf import settings

from apps.documents.models import Document
from apps.operations.history import KEY, history_read, history_samples
from apps.operations.queues import queue_list_purge
from ragproject.celery import app
from tests.helpers import eventually, stack_recover, wait_document
from workers.faults import fault_arm, fault_disarm
from workers.load import queue_loads
from workers.queues import Queue
from workers.state import state_redis

pytestmark = pytest.mark.stack

INTERVAL = settings.SLUICE_HISTORY_INTERVAL  # the test stack's: 1 s


def _sample_after(moment: float, *, timeout_s: float | None = None, where=lambda sample: True) -> dict:
    """The first sample the workers take after ``moment`` that satisfies ``where``."""
    found: list[dict] = []

    def taken() -> bool:
        found[:] = [s for s in history_samples(since=moment) if where(s)]
        return bool(found)

    eventually(taken, timeout_s=timeout_s or 10 * INTERVAL + 10)
    return found[0]


def _figure(page: str, chart_id: str) -> str:
    return re.search(rf'<figure class="sluice-chart-figure" id="{chart_id}"(.*?)</figure>', page, re.S).group(1)


def _desc(figure: str) -> str:
    return re.search(r"<desc [^>]*>(.*?)</desc>", figure, re.S).group(1)


def test_workers_record_one_sample_per_interval_with_queues_and_counter_totals(client, collection, corpus):
    first = _sample_after(time.time())
    answer = client.post("/query/", json={"collection": collection["id"], "query": f"lava? {uuid.uuid4().hex[:6]}"})
    assert answer.status_code == 200, answer.text
    rung = answer.json()["served_by"]
    asked = time.time()
    later = _sample_after(asked)

    assert set(later["q"]) == {q.value for q in Queue}
    assert all(isinstance(depth, int) and depth >= 0 for depth, _ in later["q"].values())
    # Running totals of the real counters: the answer and its admission are counted.
    assert later["s"][rung] >= first["s"].get(rung, 0) + 1
    admitted, rejected = later["a"]["interactive"]
    assert admitted >= first["a"].get("interactive", [0, 0])[0] + 1 and rejected >= 0
    history = history_read()
    assert any(v and v > 0 for v in history.served_per_min[rung])
    assert history.shed["interactive"][-1] in (None, 0.0)

    # One sampler per interval across every worker (the periodic job's lock), bounded in time.
    times = [s["t"] for s in history_samples(since=time.time() - 30)]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.5 * INTERVAL
    assert 0 < state_redis().ttl(KEY) <= settings.SLUICE_HISTORY_WINDOW + 1


def test_queue_page_draws_depth_oldest_age_shed_and_served_by_from_real_data(stack, admin, client, collection, corpus):
    question = f"What do volcanoes erupt? {uuid.uuid4().hex[:8]}"
    served = [client.post("/query/", json={"collection": collection["id"], "query": question}).json()["served_by"]
              for _ in range(2)]
    assert served[1] == "exact_cache"  # the same question again
    _sample_after(time.time())

    stack.stop_part("worker-retrieve")  # nothing consumes `retrieve`: requests are shed, messages wait
    try:
        for _ in range(3):
            app.send_task("sluice.test.never_runs", queue=Queue.RETRIEVE.value, priority=9)
        for priority in ("interactive", "batch"):
            shed = client.post("/search/", json={"collection": collection["id"], "query": "lava", "priority": priority})
            assert shed.status_code == 503 and shed.json()["error"]["reason"] == "no_workers", shed.text
        shed_at = time.time()
        _sample_after(shed_at + 1.0, where=lambda s: s["q"]["retrieve"][0] == 3 and s["q"]["retrieve"][1] >= 1.0)
        page = admin.get("/admin/queues/")
    finally:
        queue_list_purge(key="retrieve:9", actor="test_admin_charts")
        stack.start_part("worker-retrieve")
        eventually(lambda: queue_loads(["retrieve"])["retrieve"].capacity > 0, timeout_s=60)

    assert page.status_code == 200
    history = re.search(r'<div class="module" id="history">(.*?)\n</div>', page.text, re.S).group(1)
    assert "history-unavailable" not in history and "history-empty" not in history
    depth = _figure(page.text, "chart-queue-depth")
    assert 'role="img"' in depth and "<title" in depth and "messages waiting" in depth and "time (before now)" in depth
    assert "retrieve: latest 3 messages" in _desc(depth)
    assert all(f'data-series="{q.value}"' in depth and f"</svg> {q.value}</li>" in depth for q in Queue)  # + legend
    assert "<polyline" in depth
    age = float(re.search(r"retrieve: latest ([\d.]+) s", _desc(_figure(page.text, "chart-oldest-age"))).group(1))
    assert age >= 1.0
    shed = _desc(_figure(page.text, "chart-shed-rate"))
    assert "interactive: latest 100%" in shed and "batch: latest 100%" in shed
    assert "% rejected" in _figure(page.text, "chart-shed-rate")
    served_by = _figure(page.text, "chart-served-by")
    assert "answers per minute" in served_by
    assert '<rect x="' in served_by
    assert f'data-series="{served[0]}"' in served_by and 'data-series="exact_cache"' in served_by


def test_document_list_shows_the_progress_of_a_document_being_ingested(admin, client, collection, live_db):
    text = " ".join(f"Entry {i}: the harbour master notes the tide, the wind and the boats that leave at dawn."
                     for i in range(2500))
    upload = client.post(f"/collections/{collection['id']}/documents/", json={"title": "Long harbour log", "text": text})
    document_id = upload.json()["documents"][0]["id"]
    listing = f"/admin/documents/document/?collection__id__exact={collection['id']}"
    try:
        # Hold it mid-way: once some chunks are embedded, its next steps fail as if Redis
        # were down (a transient error: retried with backoff, its progress kept).
        eventually(lambda: Document.objects.filter(pk=document_id, chunks_embedded__gt=0).exists(), timeout_s=60)
        fault_arm("ingest.embed", action="transient", document_id=document_id, ttl=60)
        document = Document.objects.get(pk=document_id)
        assert document.status == "embedding" and 0 < document.chunks_embedded < document.chunks_total
        page = admin.get(listing).text
    finally:
        fault_disarm("ingest.embed")
    bar = re.search(rf'<progress class="ingest-progress" data-document="{document_id}" value="(\d+)" max="(\d+)"'
                    rf' aria-label="([^"]+)"[^>]*>(\d+)%</progress> (\d+) / (\d+) chunks \((\d+)%\)', page)
    assert bar, page[:3000]
    value, total = int(bar.group(1)), int(bar.group(2))
    assert 0 < value < total == document.chunks_total and int(bar.group(7)) == round(value / total * 100)
    assert "Long harbour log: embedding" in bar.group(3)

    assert wait_document(client, document_id, timeout=120)["status"] == "ready"
    after = admin.get(listing).text
    assert f'data-document="{document_id}"' not in after  # final: no bar


def test_query_log_has_a_latency_histogram_per_class_of_the_filtered_rows(admin, key_client, collection, user):
    critical, _, _ = key_client(username=user.username, priority="critical")
    for priority in ("critical", "interactive", "batch"):
        response = critical.post("/query/", json={"collection": collection["id"], "priority": priority,
                                                  "query": f"anything about {priority}? {uuid.uuid4().hex[:6]}"})
        assert response.status_code == 200, response.text

    page = admin.get("/admin/query/querylog/")
    assert page.status_code == 200
    chart = _figure(page.text, "chart-latency")
    assert "Latency by request class" in chart and "the last 24 h" in chart and "queries</text>" in chart
    for priority in ("critical", "interactive", "batch"):
        assert f'data-series="{priority}"' in chart and f"</svg> {priority}</li>" in chart
    assert page.text.index('id="chart-latency"') < page.text.index('id="result_list"')  # above the table

    batch = _figure(admin.get("/admin/query/querylog/?priority__exact=batch").text, "chart-latency")
    assert 'data-series="batch"' in batch and 'data-series="interactive"' not in batch
    past = _figure(admin.get("/admin/query/querylog/?created_at__year=2001").text, "chart-latency")
    assert "No finished queries (matching the filters)" in past


def test_queue_page_says_history_unavailable_while_redis_is_down(stack, admin, live_db):
    os.kill(stack.redis.pid(), signal.SIGKILL)  # the broker Redis: queues, state, the history
    try:
        page = admin.get("/admin/queues/")
    finally:
        stack_recover(stack)
    assert page.status_code == 200, page.text[:500]
    assert 'id="history-unavailable"' in page.text and "History unavailable: Redis could not be read" in page.text
    assert 'id="queues-unavailable"' in page.text
    assert 'id="history-unavailable"' not in admin.get("/admin/queues/").text  # back with Redis


