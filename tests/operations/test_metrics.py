"""/metrics: counters and histograms recorded by any process, gauges read at scrape time,
and the token rule that keeps it closed outside the local stacks."""
import uuid

import pytest
from django.test import RequestFactory, override_settings
from prometheus_client.parser import text_string_to_metric_families

from apps.operations.metrics import counter, histogram, metric_inc, metric_observe, metric_value
from apps.operations.views import metrics_view

pytestmark = pytest.mark.stack

TEST_COUNTER = counter("sluice_test_events", "events counted by the metrics test", labels=["kind"])
TEST_HISTOGRAM = histogram("sluice_test_seconds", "durations observed by the metrics test", labels=["kind"],
                           buckets=(0.1, 1.0))


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_recorded_metrics_and_live_gauges_are_scraped(api, live_db):
    kind = uuid.uuid4().hex[:8]
    metric_inc(TEST_COUNTER, kind=kind)
    metric_inc(TEST_COUNTER, 2, kind=kind)
    metric_observe(TEST_HISTOGRAM, 0.05, kind=kind)
    metric_observe(TEST_HISTOGRAM, 0.5, kind=kind)
    metric_observe(TEST_HISTOGRAM, 5.0, kind=kind)
    assert metric_value(TEST_COUNTER, kind=kind) == 3

    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)

    counted = {s.labels["kind"]: s.value for s in families["sluice_test_events"].samples if s.name.endswith("_total")}
    assert counted[kind] == 3
    buckets = {s.labels["le"]: s.value for s in families["sluice_test_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["kind"] == kind}
    assert buckets == {"0.1": 1, "1.0": 2, "+Inf": 3}
    total = [s.value for s in families["sluice_test_seconds"].samples if s.name.endswith("_sum") and s.labels["kind"] == kind]
    assert total == [pytest.approx(5.55)]

    depths = {s.labels["queue"]: s.value for s in families["sluice_queue_depth"].samples}
    assert set(depths) == {"embed", "retrieve", "generate", "generate_batch"}
    workers = {s.labels["queue"]: s.value for s in families["sluice_queue_workers"].samples}
    assert all(count >= 1 for count in workers.values())
    assert "replica1" in {s.labels["replica"] for s in families["sluice_replica_lag_bytes"].samples}


def test_labels_must_match_the_declaration():
    with pytest.raises(ValueError, match="takes labels"):
        metric_inc(TEST_COUNTER, wrong="x")


@pytest.mark.parametrize(("token", "public", "header", "status"), [
    ("", False, None, 403),                 # production default: closed, says how to open it
    ("s3cret", False, None, 401),           # token set, none sent
    ("s3cret", False, "Bearer wrong", 401),
    ("s3cret", False, "Bearer s3cret", 200),
    ("", True, None, 200),                  # the local stacks
])
def test_metrics_access_rule(live_db, token, public, header, status):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    with override_settings(SLUICE_METRICS_TOKEN=token, SLUICE_METRICS_PUBLIC=public):
        response = metrics_view(RequestFactory().get("/metrics", **headers))
    assert response.status_code == status
    if status == 403:
        assert b"SLUICE_METRICS_TOKEN" in response.content


def test_ingestion_and_priority_list_gauges_read_the_real_state(api, client, collection, live_db):
    from django.utils import timezone

    from apps.documents.models import Document
    from tests.helpers import upload_final
    from workers.recovery import dead_letter, dead_letter_discard

    ready = upload_final(client, collection, json={"title": "Weirs", "text": "A weir raises the water upstream."})
    # A document that stopped moving an hour ago: what the admin's "stuck" filter shows.
    stuck = Document.objects.get(pk=ready["id"])
    Document.objects.filter(pk=stuck.pk).update(status=Document.Status.EMBEDDING,
                                                updated_at=timezone.now() - timezone.timedelta(hours=1))
    task_id = f"gauge-test-{uuid.uuid4().hex[:8]}"
    dead_letter(task_name="sluice.test", task_id=task_id, queue="embed", args=(), kwargs={}, reason="test")
    try:
        families = _families(api.get("/metrics").text)
    finally:
        dead_letter_discard(task_id=task_id)
        Document.objects.filter(pk=stuck.pk).update(status=Document.Status.READY)

    by_status = {s.labels["status"]: s.value for s in families["sluice_documents"].samples}
    assert set(by_status) == set(Document.Status.values)
    assert by_status["embedding"] >= 1 and by_status["ready"] >= 0
    assert [s.value for s in families["sluice_documents_stuck"].samples][0] >= 1
    assert [s.value for s in families["sluice_dead_letter_messages"].samples][0] >= 1

    depth = {s.labels["queue"]: s.value for s in families["sluice_queue_depth"].samples}
    lists = [(s.labels["queue"], s.labels["priority"], s.value) for s in families["sluice_queue_priority_depth"].samples]
    ages = {(s.labels["queue"], s.labels["priority"]): s.value for s in families["sluice_queue_oldest_age_seconds"].samples}
    assert {q for q, _, _ in lists} == set(depth) and len({p for _, p, _ in lists}) > 1  # several priority lists
    assert set(ages) == {(q, p) for q, p, _ in lists} and all(age >= 0 for age in ages.values())
