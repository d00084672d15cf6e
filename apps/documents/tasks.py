"""Ingestion task: one short step per delivery, re-enqueued until the document is done.

Every outcome of a step is final or leads to another step (docs/ingestion.md, "Recovery"):
transient errors (database, Redis, broker) retry with exponential backoff, anything else
marks the document failed with the reason, and the reconciler re-enqueues what is left
without a message (a lost message, an enqueue while the broker was down).
"""
import logging

from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings

from workers.errors import TRANSIENT_ERRORS
from workers.faults import fault_point
from workers.queues import Priority, Queue
from workers.tasks import task

from .services.ingestion import (
    INGEST_TASK,
    Step,
    document_ingest_step,
    ingest_pending_clear,
    ingest_pending_mark,
    mark_failed,
    mark_failed_unexpected,
)

logger = logging.getLogger(__name__)

STEP_SOFT_TIME_LIMIT = 300
STEP_TIME_LIMIT = STEP_SOFT_TIME_LIMIT + 30


def document_ingest_enqueue(*, document_id: int, version: int) -> bool:
    """Queue the next ingestion step; False (logged) when the broker cannot be reached:
    the document is not lost, the reconciler queues it once the broker is back."""
    try:
        fault_point("ingest.enqueue", document_id=document_id)
        document_ingest.apply_async(kwargs={"document_id": document_id, "version": version},
                                    priority=int(Priority.BULK))
    except Exception as exc:  # the broker (or its connection) failed: never lose the document
        logger.warning("document %s version %s: could not queue its ingestion step (%r); the reconciler "
                       "queues it once the broker is reachable", document_id, version, exc)
        return False
    ingest_pending_mark(document_id=document_id, version=version, running=False)
    return True


@task(
    name=INGEST_TASK,
    queue=Queue.EMBED,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=STEP_SOFT_TIME_LIMIT,
    time_limit=STEP_TIME_LIMIT,
)
def document_ingest(self, *, document_id: int, version: int) -> str:
    ingest_pending_mark(document_id=document_id, version=version, running=True, ttl=STEP_TIME_LIMIT + 60)
    try:
        outcome = document_ingest_step(document_id=document_id, version=version)
    except SoftTimeLimitExceeded:
        outcome = mark_failed(
            document_id=document_id, version=version,
            message=f"an ingestion step took longer than {STEP_SOFT_TIME_LIMIT}s (a very large or pathological "
            "file?); split the file or raise the limit, then reindex.",
        )
    except Retry:
        raise
    except TRANSIENT_ERRORS as exc:
        retries = self.request.retries
        if retries >= settings.SLUICE_INGEST_TRANSIENT_RETRIES:
            logger.warning("document %s version %s: step failed %d times on a transient error (%r); left to the "
                           "reconciler", document_id, version, retries + 1, exc)
            ingest_pending_clear(document_id=document_id)
            return "deferred"
        countdown = min(60, 2 ** retries)
        logger.warning("document %s version %s: transient error in an ingestion step (%r); retrying in %ss",
                       document_id, version, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.SLUICE_INGEST_TRANSIENT_RETRIES)
    except Exception as exc:  # anything else is final for this version, with its reason
        logger.exception("document %s version %s: ingestion step failed", document_id, version)
        outcome = mark_failed_unexpected(document_id=document_id, version=version, exc=exc)
    if outcome != Step.CONTINUE or not document_ingest_enqueue(document_id=document_id, version=version):
        # Final, or the next step could not be queued: no message is pending, so the
        # reconciler picks the document up once it has been still for a while.
        ingest_pending_clear(document_id=document_id)
    return outcome
