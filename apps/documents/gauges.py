"""The documents app's scrape-time gauges (apps/operations/metrics.py), registered in
``DocumentsConfig.ready()``: documents per status and the stuck ones, what the admin's
"stuck" filter and the dashboard's ingestion panels show (docs/monitoring.md)."""
from django.conf import settings
from django.db.models import Count

from apps.operations.metrics import gauge_source

from .models import Document
from .services.ingestion import NOT_FINAL, documents_stuck


def _documents_by_status():
    counts = dict(Document.objects.values_list("status").annotate(n=Count("pk")).order_by())
    for status in Document.Status.values:  # every status, 0 included: an alert on `failed` sees it rise from 0
        yield {"status": status}, counts.get(status, 0)


def _documents_stuck():
    # The count the admin's "stuck" filter lists (bounded like it; the reconciler acts on them).
    yield {}, documents_stuck(stuck_after=settings.SLUICE_INGEST_STUCK_AFTER, limit=10_000).count()


def documents_gauges_register() -> None:
    gauge_source("sluice_documents", "Documents per ingestion status", labels=["status"])(_documents_by_status)
    gauge_source("sluice_documents_stuck",
                 f"Documents not final ({', '.join(NOT_FINAL)}) whose progress has not moved for "
                 "SLUICE_INGEST_STUCK_AFTER seconds (the reconciler re-enqueues or fails them)")(_documents_stuck)
