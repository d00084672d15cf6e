"""Writes of the query path: the query log, and starting a query's task chain."""
import uuid

from celery import chain
from django.conf import settings
from django.utils import timezone

from workers.queues import Priority, Queue

from .models import QueryLog


def query_log_start(*, user, collection, query: str, response_mode: str, search_mode: str, top_k: int,
                    filters: dict) -> QueryLog:
    return QueryLog.objects.create(
        user=user, collection=collection, query=query, response_mode=response_mode,
        search_mode=search_mode, top_k=top_k, filters=filters,
    )


def query_log_finish(*, query_id: int, outcome: str, generator: str = "", served_by: str = "", error: str = "",
                     timings: dict | None = None) -> None:
    """Record how a query ended; the first final outcome wins (a late worker result does
    not overwrite a timeout or a cancellation recorded by the web tier)."""
    created = QueryLog.objects.filter(pk=query_id).values_list("created_at", flat=True).first()
    if created is None:
        return
    now = timezone.now()
    QueryLog.objects.filter(pk=query_id, outcome=QueryLog.Outcome.PENDING).update(
        outcome=outcome, generator=generator, served_by=served_by, error=error[:2000],
        timings=timings or {}, finished_at=now, latency_ms=round((now - created).total_seconds() * 1000, 1),
    )


def query_enqueue(*, log: QueryLog, stream: bool, expires: float | None) -> str:
    """Start the search (then the answer) for ``log``; returns the id of the task whose
    result is the answer. A generation backend answers on the generate queue; extractive
    answers (no backend configured) are composed by the search task itself, one hop fewer."""
    from apps.generation.tasks import answer

    from .tasks import search_signature

    steps = [search_signature(
        collection_ids=[log.collection_id], query=log.query, mode=log.search_mode, top_k=log.top_k,
        filters=log.filters, expires=expires,
    )]
    delivery = {"query_id": log.pk, "stream": stream}
    if settings.SLUICE_GENERATION_BACKEND == "extractive":
        steps[0].kwargs["answer"] = delivery
    else:
        steps[0].set(ignore_result=True)  # the hits travel in the answer task's message
        steps.append(answer.signature(
            kwargs={"question": log.query, **delivery}, queue=Queue.GENERATE.value, task_id=str(uuid.uuid4()),
            priority=int(Priority.INTERACTIVE), **({"expires": expires} if expires else {}),
        ))
    ids = [step.options["task_id"] for step in steps]
    QueryLog.objects.filter(pk=log.pk).update(task_ids=ids, task_id=ids[-1])
    chain(*steps).apply_async()
    log.task_ids, log.task_id = ids, ids[-1]
    return ids[-1]
