"""``GET /api/v1/tasks/{id}/`` (the state of an async query, and its answer when done),
and the helpers the waiting views share: a failed chain, giving up, total timings."""
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from apps.documents.selectors import collections_for
from apps.operations.api.asyncapi import documented_by, in_thread, prepare
from workers.deadlines import cancel_key
from workers.results import result_get
from workers.state import async_redis

from ..log import query_log_finish
from ..models import QueryLog
from .schemas import TaskApiSchema
from ..timing import elapsed_ms, timings_complete


def state_redis_async():
    return async_redis(settings.SLUICE_STATE_REDIS_URL)


async def chain_failure(task_ids) -> dict | None:
    """The result meta of a failed or revoked task of the chain, if any."""
    for task_id in task_ids:
        meta = await result_get(task_id)
        if meta and meta.get("status") in ("FAILURE", "REVOKED"):
            return meta
    return None


async def give_up(query_id: int, *, outcome: str, error: str) -> None:
    """The client will not wait longer: the cancel flag and the tasks' deadline checks drop
    the work (no Celery revoke: a synchronous broadcast to every worker, on this event
    loop, at the worst moment), and the log says why."""
    await state_redis_async().set(cancel_key(query_id), "1", ex=600)
    await in_thread(query_log_finish)(query_id=query_id, outcome=outcome, error=error)


def with_total(body: dict, started: float | None = None, *, web_ms: float | None = None,
               total_ms: float | None = None) -> dict:
    """The body with ``total_ms`` (measured by the web tier since ``started``, or given),
    ``web_ms`` and ``queue_ms`` added to its timings (see timing.py)."""
    total = elapsed_ms(started) if total_ms is None else total_ms
    return {**body, "timings": timings_complete(body["timings"], total_ms=total, web_ms=web_ms)}


def _task_lookup(request, task_id: str) -> QueryLog:
    # The asker only, and only while they can still read the collection (access control).
    logs = QueryLog.objects.filter(user=request.user, collection__in=collections_for(user=request.user))
    return get_object_or_404(logs, task_id=task_id)


def _failure(task_id: str, code: str, message: str) -> JsonResponse:
    return JsonResponse({"task_id": task_id, "state": "FAILURE", "error": {"code": code, "message": message}})


@documented_by(TaskApiSchema)
async def task_api(request, task_id: str):
    log = await prepare(request, lambda drf_request: _task_lookup(drf_request, task_id), method="GET")
    if isinstance(log, JsonResponse):
        return log
    meta = await result_get(task_id)
    if await chain_failure(log.task_ids) is not None or (meta and meta["status"] == "FAILURE"):
        return _failure(task_id, "query_failed", "the query failed on a worker; it was logged")
    if meta and meta["status"] == "SUCCESS" and not meta.get("result"):
        return _failure(task_id, "expired", "the query's deadline passed before it ran; ask again")
    if meta is None or meta["status"] != "SUCCESS":
        return JsonResponse({"task_id": task_id, "state": meta["status"] if meta else "PENDING", "query_id": log.pk})
    # The query log's latency runs from the request to the answer: the async total.
    latency = await in_thread(lambda: QueryLog.objects.filter(pk=log.pk).values_list("latency_ms", flat=True).first())()
    return JsonResponse({"task_id": task_id, "state": "SUCCESS", "result": with_total(meta["result"], total_ms=latency or 0.0)})
