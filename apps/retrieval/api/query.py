"""``POST /api/v1/query/`` (sync, async or streaming answers) and ``GET /api/v1/tasks/{id}/``.

Async views: waiting for a result or relaying a token stream holds no server thread; the
short synchronous parts (authentication, validation, the query log) run in a thread.
"""
import asyncio
import json
import time

from asgiref.sync import sync_to_async
from celery.result import AsyncResult
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from apps.documents.selectors import collections_for
from apps.generation.services.delivery import cancel_key, stream_key
from apps.operations.api.asyncapi import documented_by, error_response, prepare
from workers.results import ResultTimeout, result_get, result_wait
from workers.state import async_redis

from ..models import QueryLog
from ..services import query_enqueue, query_log_finish, query_log_start
from .schemas import QueryApiSchema, TaskApiSchema
from .serializers import QueryRequestSerializer
from .timing import elapsed_ms, timings_complete

def _state_redis():
    return async_redis(settings.SLUICE_STATE_REDIS_URL)


def _query_start(request) -> dict:
    serializer = QueryRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    collection = get_object_or_404(collections_for(user=request.user), pk=data["collection"])
    response_mode = "stream" if data["stream"] else "async" if data["run_async"] else "sync"
    log = query_log_start(
        user=request.user, collection=collection, query=data["query"], response_mode=response_mode,
        search_mode=data["mode"], top_k=data["top_k"], filters=data["filters"],
    )
    # Async results may be collected later; sync and stream requests stop caring at the deadline.
    expires = None if response_mode == "async" else settings.SLUICE_QUERY_TIMEOUT
    enqueue_started = time.perf_counter()
    task_id = query_enqueue(log=log, stream=data["stream"], expires=expires)
    return {"query_id": log.pk, "task_id": task_id, "task_ids": log.task_ids, "response_mode": response_mode,
            "enqueue_ms": elapsed_ms(enqueue_started)}


async def _give_up(prepared: dict, *, outcome: str, error: str) -> None:
    await _state_redis().set(cancel_key(prepared["query_id"]), "1", ex=600)
    for task_id in prepared["task_ids"]:
        AsyncResult(task_id).revoke()
    await sync_to_async(query_log_finish)(query_id=prepared["query_id"], outcome=outcome, error=error)


async def _chain_failure(task_ids: list[str]) -> dict | None:
    for task_id in task_ids:
        meta = await result_get(task_id)
        if meta and meta.get("status") in ("FAILURE", "REVOKED"):
            return meta
    return None


@documented_by(QueryApiSchema)
@csrf_exempt  # as DRF's views: session-authenticated requests are CSRF-checked by DRF itself
async def query_api(request):
    started = time.perf_counter()
    prepared = await prepare(request, _query_start, throttle_scopes=("query",))
    if isinstance(prepared, JsonResponse):
        return prepared
    prepared["web_ms"] = round(elapsed_ms(started) - prepared["enqueue_ms"], 1)
    if prepared["response_mode"] == "async":
        return JsonResponse(
            {"task_id": prepared["task_id"], "query_id": prepared["query_id"],
             "status_url": f"/api/v1/tasks/{prepared['task_id']}/"},
            status=202,
        )
    if prepared["response_mode"] == "stream":
        response = StreamingHttpResponse(_relay(prepared, started), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # let a proxy pass events through at once
        return response
    try:
        meta = await result_wait(prepared["task_id"], timeout=settings.SLUICE_QUERY_TIMEOUT)
    except ResultTimeout:
        failure = await _chain_failure(prepared["task_ids"])
        if failure is None:
            await _give_up(prepared, outcome=QueryLog.Outcome.TIMEOUT, error="no answer within the deadline")
            return error_response(
                504, code="timeout", headers={"Retry-After": "10"},
                message=f"no answer within {settings.SLUICE_QUERY_TIMEOUT:.0f}s; retry later or use async mode",
            )
        meta = failure
    if meta["status"] != "SUCCESS":
        await sync_to_async(query_log_finish)(
            query_id=prepared["query_id"], outcome=QueryLog.Outcome.FAILED, error=str(meta.get("result"))[:500])
        return error_response(503, code="query_failed", headers={"Retry-After": "5"},
                              message="the query failed on a worker; it was logged")
    return JsonResponse(_with_total(meta["result"], started, web_ms=prepared["web_ms"]))


def _with_total(body: dict, started: float | None = None, *, web_ms: float | None = None,
                total_ms: float | None = None) -> dict:
    """The body with ``total_ms`` (measured by the web tier since ``started``, or given),
    ``web_ms`` and ``queue_ms`` added to its timings (see timing.py)."""
    total = elapsed_ms(started) if total_ms is None else total_ms
    return {**body, "timings": timings_complete(body["timings"], total_ms=total, web_ms=web_ms)}


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def _relay(prepared: dict, started: float):
    """Relay the answer task's Redis stream as server-sent events until `done`, an error or
    the deadline; a client that disconnects cancels generation."""
    key = stream_key(prepared["query_id"])
    redis = _state_redis()
    deadline = time.monotonic() + settings.SLUICE_QUERY_TIMEOUT
    last_id = "0-0"
    finished = False
    try:
        yield _event("start", {"query_id": prepared["query_id"], "task_id": prepared["task_id"]})
        while not finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await _give_up(prepared, outcome=QueryLog.Outcome.TIMEOUT, error="stream deadline passed")
                yield _event("error", {"code": "timeout", "message": "no answer within the deadline; retry later"})
                finished = True
                break
            entries = await redis.xread({key: last_id}, count=100, block=int(min(remaining, 1.0) * 1000))
            if not entries:
                failure = await _chain_failure(prepared["task_ids"])
                if failure is not None:
                    await sync_to_async(query_log_finish)(
                        query_id=prepared["query_id"], outcome=QueryLog.Outcome.FAILED, error=str(failure.get("result"))[:500])
                    yield _event("error", {"code": "query_failed", "message": "the query failed on a worker; it was logged"})
                    finished = True
                continue
            for entry_id, fields in entries[0][1]:
                last_id = entry_id
                if b"t" in fields:
                    yield _event("token", {"text": fields[b"t"].decode()})
                elif b"done" in fields:
                    yield _event("done", _with_total(json.loads(fields[b"done"]), started, web_ms=prepared["web_ms"]))
                    finished = True
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away: stop generation and free the model's slot.
        if not finished:
            await asyncio.shield(_give_up(prepared, outcome=QueryLog.Outcome.CANCELLED, error="client disconnected"))
        raise
    finally:
        if finished:
            await redis.delete(key)


def _task_lookup(request, task_id: str) -> QueryLog:
    # The asker only, and only while they can still read the collection (access control).
    logs = QueryLog.objects.filter(user=request.user, collection__in=collections_for(user=request.user))
    return get_object_or_404(logs, task_id=task_id)


@documented_by(TaskApiSchema)
async def task_api(request, task_id: str):
    """``GET /api/v1/tasks/{id}/``: the state of an async query, and its answer when done."""
    log = await prepare(request, lambda drf_request: _task_lookup(drf_request, task_id), method="GET")
    if isinstance(log, JsonResponse):
        return log
    meta = await result_get(task_id)
    failure = await _chain_failure(log.task_ids)
    if failure is not None or (meta and meta["status"] == "FAILURE"):
        return JsonResponse({"task_id": task_id, "state": "FAILURE",
                             "error": {"code": "query_failed", "message": "the query failed on a worker; it was logged"}})
    if meta is None or meta["status"] != "SUCCESS":
        state = meta["status"] if meta else "PENDING"
        return JsonResponse({"task_id": task_id, "state": state, "query_id": log.pk})
    # The query log's latency runs from the request to the answer: the async total.
    latency = await sync_to_async(lambda: QueryLog.objects.filter(pk=log.pk).values_list("latency_ms", flat=True).first())()
    return JsonResponse({"task_id": task_id, "state": "SUCCESS", "result": _with_total(meta["result"], total_ms=latency or 0.0)})
