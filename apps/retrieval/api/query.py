"""``POST /api/v1/query/`` (sync, async or streaming answers) and ``GET /api/v1/tasks/{id}/``.

Async views: waiting for a result or relaying a token stream holds no server thread; the
short synchronous parts (authentication, validation, the query log) run in a thread.
"""
import asyncio
import json
import logging
import time
import uuid

from celery.result import AsyncResult
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from apps.documents.selectors import collections_for
from apps.generation.services.answering import generation_configured
from apps.generation.services.delivery import SERVED, cached_body, stream_key
from apps.operations.api.asyncapi import documented_by, error_response, in_thread, prepare
from apps.operations.api.overload import broker_errors_as_503, overloaded_response, priority_class_for
from apps.operations.metrics import metric_inc
from apps.operations.overload.admission import (
    CLASS_PRIORITY,
    admission_policy,
    admission_record,
    deadline_resolve,
)
from apps.operations.overload.policy import overload_policy
from workers.deadlines import EXPIRES_GRACE, cancel_key
from workers.results import ResultTimeout, result_get, result_wait
from workers.state import async_redis

from ..caches import CacheScope, exact_get, params_digest, stale_get
from ..models import QueryLog
from ..services import query_enqueue, query_log_finish, query_log_start, query_plan
from .schemas import QueryApiSchema, TaskApiSchema
from .serializers import QueryRequestSerializer
from .timing import elapsed_ms, timings_complete

logger = logging.getLogger(__name__)

def _state_redis():
    return async_redis(settings.SLUICE_STATE_REDIS_URL)


def _query_start(request) -> dict:
    """Everything before waiting, in a thread: validation, access, the request's class and
    deadline, the exact cache, admission control, the query log and the enqueue. Returns
    what the async part needs: a cached body, a rejection, or the task to wait for."""
    serializer = QueryRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    collection = get_object_or_404(collections_for(user=request.user), pk=data["collection"])
    response_mode = "stream" if data["stream"] else "async" if data["run_async"] else "sync"
    priority_class = priority_class_for(request, requested=data.get("priority"))
    deadline_s = deadline_resolve(priority_class=priority_class, response_mode=response_mode,
                                  requested_ms=data.get("deadline_ms"))
    policy = overload_policy()
    scope = CacheScope(collection_id=collection.pk, content_version=collection.content_version,
                       params=params_digest(query=data["query"], mode=data["mode"], top_k=data["top_k"],
                                            filters=data["filters"]))
    log_fields = {
        "user": request.user, "collection": collection, "query": data["query"], "response_mode": response_mode,
        "search_mode": data["mode"], "top_k": data["top_k"], "filters": data["filters"],
        "priority": priority_class, "deadline_s": deadline_s,
    }
    base = {"response_mode": response_mode, "priority_class": priority_class, "deadline_s": deadline_s,
            "deadline": time.monotonic() + deadline_s}

    if policy.exact_cache_enabled:
        started = time.perf_counter()
        cached = exact_get(scope=scope, query=data["query"])
        if cached is not None:
            return {**base, **_cached_answer(cached, log_fields=log_fields, served_by="exact_cache",
                                             timings={"cache_ms": elapsed_ms(started)}, response_mode=response_mode)}

    generate = generation_configured()
    with broker_errors_as_503():
        admission = admission_policy(generation_backend=settings.SLUICE_GENERATION_BACKEND).allow_request(
            priority_class=priority_class, deadline_s=deadline_s, needs_generation=generate)
    admission_record(endpoint="query", priority_class=priority_class, admission=admission)
    if admission.route == "reject":
        if policy.stale_cache_enabled:
            started = time.perf_counter()
            stale = stale_get(scope=scope, query=data["query"])
            if stale is not None:
                return {**base, **_cached_answer(
                    stale, log_fields=log_fields, served_by="stale_cache", timings={"cache_ms": elapsed_ms(started)},
                    response_mode=response_mode, stale=True, reason=admission.reason,
                    cached_for_version=stale["cached_for_version"])}
        log = query_log_start(**log_fields, outcome=QueryLog.Outcome.REJECTED, served_by="",
                              error=f"shed by admission control: {admission.reason}", latency_ms=0.0)
        logger.info("query %s (%s) rejected: %s, estimated waits %s", log.pk, priority_class, admission.reason,
                    admission.waits)
        return {**base, "query_id": log.pk, "rejected": admission}

    task_ids = [str(uuid.uuid4()), str(uuid.uuid4())]  # the search task, the answer's
    log = query_log_start(**log_fields, task_ids=task_ids)
    plan = query_plan(
        log=log, stream=data["stream"], priority_class=priority_class, deadline=time.time() + deadline_s,
        route=admission.route, reason=admission.reason, scope=scope.as_dict(),
        semantic_cache=policy.semantic_cache_enabled, answer_task_id=task_ids[1], generate=generate,
    )
    enqueue_started = time.perf_counter()
    failed = lambda exc: query_log_finish(query_id=log.pk, outcome=QueryLog.Outcome.FAILED,  # noqa: E731
                                          error=f"could not enqueue: {exc!r}")
    with broker_errors_as_503(on_error=failed):
        query_enqueue(log=log, plan=plan, priority=int(CLASS_PRIORITY[priority_class]),
                      expires=deadline_s + EXPIRES_GRACE)
    return {**base, "query_id": log.pk, "task_id": task_ids[1], "task_ids": task_ids,
            "route": admission.route, "enqueue_ms": elapsed_ms(enqueue_started)}


def _cached_answer(cached: dict, *, log_fields: dict, served_by: str, timings: dict, response_mode: str,
                   stale: bool = False, reason: str = "", **details) -> dict:
    """A cache hit answered by the web tier itself: logged as finished; for async requests
    the body is stored as a task result so ``GET /tasks/{id}/`` works as usual."""
    task_id = str(uuid.uuid4()) if response_mode == "async" else ""
    log = query_log_start(
        **log_fields, task_ids=[task_id] if task_id else [], served_by=served_by, generator=cached["generator"],
        outcome=QueryLog.Outcome.DEGRADED if stale else QueryLog.Outcome.OK, timings=timings,
        error=f"stale answer: {reason}" if stale else "", latency_ms=sum(timings.values()),
    )
    body = cached_body(cached=cached, query_id=log.pk, priority_class=log_fields["priority"], served_by=served_by,
                       timings=timings, stale=stale, reason=reason, **details)
    metric_inc(SERVED, served_by=served_by, priority_class=log_fields["priority"])
    if task_id:
        with broker_errors_as_503():
            AsyncResult(task_id).backend.store_result(task_id, body, "SUCCESS")
    return {"query_id": log.pk, "cached": body, "task_id": task_id}


async def _give_up(prepared: dict, *, outcome: str, error: str) -> None:
    # The cancel flag and the tasks' deadline checks drop the work; no Celery revoke (a
    # synchronous broadcast to every worker, on this event loop, at the worst moment).
    await _state_redis().set(cancel_key(prepared["query_id"]), "1", ex=600)
    await in_thread(query_log_finish)(query_id=prepared["query_id"], outcome=outcome, error=error)


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
    if "rejected" in prepared:
        return _rejection(prepared)
    if "cached" in prepared:
        return _cached_response(prepared, started)
    prepared["web_ms"] = round(elapsed_ms(started) - prepared["enqueue_ms"], 1)
    if prepared["response_mode"] == "async":
        return JsonResponse(
            {"task_id": prepared["task_id"], "query_id": prepared["query_id"], "priority": prepared["priority_class"],
             "status_url": f"/api/v1/tasks/{prepared['task_id']}/"},
            status=202,
        )
    if prepared["response_mode"] == "stream":
        return _event_stream(_relay(prepared, started))
    try:
        meta = await result_wait(prepared["task_id"], timeout=max(0.0, prepared["deadline"] - time.monotonic()))
    except ResultTimeout:
        failure = await _chain_failure(prepared["task_ids"])
        if failure is None:
            await _give_up(prepared, outcome=QueryLog.Outcome.TIMEOUT, error="no answer within the deadline")
            return error_response(
                504, code="timeout", headers={"Retry-After": "10"},
                message=f"no answer within the request's deadline ({prepared['deadline_s']:.1f}s); "
                        "retry later or use async mode",
            )
        meta = failure
    if meta["status"] != "SUCCESS" or not meta.get("result"):
        await in_thread(query_log_finish)(
            query_id=prepared["query_id"], outcome=QueryLog.Outcome.FAILED, error=str(meta.get("result"))[:500])
        return error_response(503, code="query_failed", headers={"Retry-After": "5"},
                              message="the query failed on a worker; it was logged")
    return JsonResponse(_with_total(meta["result"], started, web_ms=prepared["web_ms"]))


def _rejection(prepared: dict) -> JsonResponse:
    return overloaded_response(prepared["rejected"], priority_class=prepared["priority_class"],
                               query_id=prepared["query_id"])


def _cached_response(prepared: dict, started: float):
    body = prepared["cached"]
    if prepared["response_mode"] == "async":
        return JsonResponse({"task_id": prepared["task_id"], "query_id": prepared["query_id"],
                             "priority": prepared["priority_class"], "served_by": body["served_by"],
                             "status_url": f"/api/v1/tasks/{prepared['task_id']}/"}, status=202)
    body = _with_total(body, started)
    if prepared["response_mode"] == "stream":
        async def events():
            yield _event("start", {"query_id": prepared["query_id"], "task_id": None})
            yield _event("token", {"text": body["answer"]})
            yield _event("done", body)
        return _event_stream(events())
    return JsonResponse(body)


def _event_stream(events) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let a proxy pass events through at once
    return response


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
    deadline = prepared["deadline"]
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
                    await in_thread(query_log_finish)(
                        query_id=prepared["query_id"], outcome=QueryLog.Outcome.FAILED, error=str(failure.get("result"))[:500])
                    yield _event("error", {"code": "query_failed", "message": "the query failed on a worker; it was logged"})
                    finished = True
                continue
            for entry_id, fields in entries[0][1]:
                last_id = entry_id
                if b"t" in fields:
                    yield _event("token", {"text": fields[b"t"].decode()})
                elif b"reset" in fields:
                    # Generation failed mid-stream: the answer starts again, extractively.
                    yield _event("reset", {"reason": "generation failed; the answer follows again from the sources"})
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
    if meta and meta["status"] == "SUCCESS" and not meta.get("result"):
        return JsonResponse({"task_id": task_id, "state": "FAILURE",
                             "error": {"code": "expired", "message": "the query's deadline passed before it ran; ask again"}})
    if meta is None or meta["status"] != "SUCCESS":
        state = meta["status"] if meta else "PENDING"
        return JsonResponse({"task_id": task_id, "state": state, "query_id": log.pk})
    # The query log's latency runs from the request to the answer: the async total.
    latency = await in_thread(lambda: QueryLog.objects.filter(pk=log.pk).values_list("latency_ms", flat=True).first())()
    return JsonResponse({"task_id": task_id, "state": "SUCCESS", "result": _with_total(meta["result"], total_ms=latency or 0.0)})
