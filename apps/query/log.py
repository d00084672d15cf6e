"""Step 7 of a question, and the record of every other: the query log (one row per
query; the first final outcome wins) and dropping a step whose client has given up."""
from django.utils import timezone

from workers.deadlines import deadline_check
from workers.load import service_sample

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


def query_dropped(plan, *, queue: str, step: str) -> bool:
    """Drop ``step`` of ``plan``'s query when its client has given up (deadline passed,
    or the web tier flagged it gone): the log says why. True when dropped."""
    reason = deadline_check(deadline=plan.deadline, request_id=plan.query_id, queue=queue, step=step)
    if reason:
        service_sample(None)  # no work done: keep it out of the queue's service times
        query_log_finish(
            query_id=plan.query_id,
            outcome=QueryLog.Outcome.EXPIRED if reason == "expired" else QueryLog.Outcome.CANCELLED,
            error=f"dropped before {step}: " + ("deadline passed" if reason == "expired" else "client gone"))
    return bool(reason)
