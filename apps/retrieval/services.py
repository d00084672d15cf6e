"""Writes of the query path: the query log, and starting a query's task chain."""
from django.utils import timezone

from .models import QueryLog


def query_log_start(*, user, collection, query: str, response_mode: str, search_mode: str, top_k: int,
                    filters: dict, priority: str = "", deadline_s: float | None = None,
                    task_ids: list[str] | None = None, **finished) -> QueryLog:
    """The query's log row; with ``finished`` (outcome, served_by, ...) already final (a
    cache hit or a rejection answered by the web tier)."""
    task_ids = task_ids or []
    log = QueryLog(
        user=user, collection=collection, query=query, response_mode=response_mode, search_mode=search_mode,
        top_k=top_k, filters=filters, priority=priority, deadline_s=deadline_s, task_ids=task_ids,
        task_id=task_ids[-1] if task_ids else "", **finished,
    )
    if finished:
        log.finished_at = timezone.now()
    log.save()
    return log


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


def query_plan(*, log: QueryLog, stream: bool, priority_class: str, deadline: float, route: str, reason: str,
               scope: dict, semantic_cache: bool, answer_task_id: str, generate: bool) -> dict:
    """What the workers need to know about a query beyond its search parameters (see
    apps/retrieval/pipeline.py). ``generate``: a generation backend is configured (decided
    by the web tier, so one process's view of the configuration governs the request)."""
    return {
        "query_id": log.pk, "stream": stream, "priority_class": priority_class, "deadline": deadline,
        "route": route, "reason": reason, "scope": scope, "semantic_cache": semantic_cache,
        "answer_task_id": answer_task_id, "generate": generate,
    }


def query_enqueue(*, log: QueryLog, plan: dict, priority: int, expires: float | None) -> None:
    """Start the query: the search task, which answers or hands over to the answer task
    (its id decided here, ``plan["answer_task_id"]``, is the one the web tier waits on)."""
    from .tasks import search_signature

    signature = search_signature(
        collection_ids=[log.collection_id], query=log.query, mode=log.search_mode, top_k=log.top_k,
        filters=log.filters, priority=priority, expires=expires, plan=plan,
    )
    signature.set(task_id=log.task_ids[0], ignore_result=True)
    signature.apply_async()
