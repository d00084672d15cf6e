"""``POST /api/v1/query/``: sync, async or streaming answers (docs/query.md).

An async view: waiting for a result (or relaying a token stream, stream.py) holds no
server thread; the short synchronous part (validation, access, the service start.py) runs
in a thread. The view only parses, calls ``query_start`` and renders.
"""
import time

from django.http import JsonResponse

from apps.operations.api.asyncapi import async_api, error_response, in_thread, prepare
from apps.operations.api.overload import overloaded_response
from apps.operations.overload.admission import deadline_resolve
from workers.results import ResultTimeout, result_wait

from ..log import query_log_finish
from ..models import QueryLog
from ..start import Cached, Rejected, query_start
from .requests import request_from
from .schemas import QueryApiSchema
from .serializers import QueryRequestSerializer
from .stream import cached_events, event_stream, relay
from .results import chain_failure, give_up, with_total
from ..timing import elapsed_ms


def _query_start(drf_request):
    data, request = request_from(
        drf_request, QueryRequestSerializer,
        response_mode=lambda data: "stream" if data["stream"] else "async" if data["run_async"] else "sync",
        deadline_s=lambda data, priority_class, mode: deadline_resolve(
            priority_class=priority_class, response_mode=mode, requested_ms=data.get("deadline_ms")))
    return request, query_start(request, stream=data["stream"])


def _accepted(task_id: str, query_id: int, priority_class: str, **extra) -> JsonResponse:
    return JsonResponse({"task_id": task_id, "query_id": query_id, "priority": priority_class, **extra,
                         "status_url": f"/api/v1/tasks/{task_id}/"}, status=202)


@async_api(QueryApiSchema)
async def query_api(request):
    started = time.perf_counter()
    prepared = await prepare(request, _query_start, throttle_scopes=("query",))
    if isinstance(prepared, JsonResponse):
        return prepared
    query, outcome = prepared
    if isinstance(outcome, Rejected):
        return overloaded_response(outcome.admission, priority_class=query.priority_class, query_id=outcome.query_id)
    if isinstance(outcome, Cached):
        if query.response_mode == "async":
            return _accepted(outcome.task_id, outcome.query_id, query.priority_class,
                             served_by=outcome.body["served_by"])
        body = with_total(outcome.body, started)
        return event_stream(cached_events(outcome, body)) if query.response_mode == "stream" else JsonResponse(body)
    web_ms = round(elapsed_ms(started) - outcome.enqueue_ms, 1)
    if query.response_mode == "async":
        return _accepted(outcome.task_id, outcome.query_id, query.priority_class)
    if query.response_mode == "stream":
        return event_stream(relay(query, outcome, started=started, web_ms=web_ms))
    try:
        meta = await result_wait(outcome.task_id, timeout=max(0.0, query.deadline - time.monotonic()), forget=True)
    except ResultTimeout:
        meta = await chain_failure(outcome.task_ids)
        if meta is None:
            await give_up(outcome.query_id, outcome=QueryLog.Outcome.TIMEOUT, error="no answer within the deadline")
            return error_response(
                504, code="timeout", headers={"Retry-After": "10"},
                message=f"no answer within the request's deadline ({query.deadline_s:.1f}s); "
                        "retry later or use async mode",
            )
    if meta["status"] != "SUCCESS" or not meta.get("result"):
        await in_thread(query_log_finish)(
            query_id=outcome.query_id, outcome=QueryLog.Outcome.FAILED, error=str(meta.get("result"))[:500])
        return error_response(503, code="query_failed", headers={"Retry-After": "5"},
                              message="the query failed on a worker; it was logged")
    return JsonResponse(with_total(meta["result"], started, web_ms=web_ms))
