"""Ingestion task: one short step per delivery, re-enqueued until the document is done."""
import logging

from celery.exceptions import SoftTimeLimitExceeded

from workers.queues import Priority, Queue
from workers.tasks import task

from .services.ingestion import Step, document_ingest_step, mark_failed

logger = logging.getLogger(__name__)

STEP_SOFT_TIME_LIMIT = 300


def document_ingest_enqueue(*, document_id: int, version: int) -> None:
    document_ingest.apply_async(kwargs={"document_id": document_id, "version": version}, priority=int(Priority.BULK))


@task(
    name="sluice.documents.ingest",
    queue=Queue.EMBED,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=STEP_SOFT_TIME_LIMIT,
    time_limit=STEP_SOFT_TIME_LIMIT + 30,
)
def document_ingest(*, document_id: int, version: int) -> str:
    try:
        outcome = document_ingest_step(document_id=document_id, version=version)
    except SoftTimeLimitExceeded:
        return mark_failed(
            document_id=document_id, version=version,
            message=f"an ingestion step took longer than {STEP_SOFT_TIME_LIMIT}s (a very large or pathological "
            "file?); split the file or raise the limit, then reindex.",
        )
    if outcome == Step.CONTINUE:
        document_ingest_enqueue(document_id=document_id, version=version)
    return outcome
