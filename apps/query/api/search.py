"""``POST /api/v1/search/``: retrieval only. An async view: the request waits on the
result in Redis without holding a server thread; the service is start.py."""
import time

from django.conf import settings
from django.http import JsonResponse

from apps.operations.api.asyncapi import async_api, error_response, prepare
from apps.operations.api.overload import overloaded_response
from workers.results import ResultTimeout, result_wait

from ..start import Rejected, search_start
from .requests import request_from
from .schemas import SearchApiSchema
from .serializers import SearchRequestSerializer
from ..timing import elapsed_ms, timings_complete


def _search_start(drf_request):
    data, request = request_from(drf_request, SearchRequestSerializer, deadline_s=lambda data, *_: (
        min(settings.SLUICE_SEARCH_TIMEOUT, data["deadline_ms"] / 1000) if data.get("deadline_ms")
        else settings.SLUICE_SEARCH_TIMEOUT))
    return data, request, search_start(request)


def _timeout(message: str) -> JsonResponse:
    return error_response(504, code="timeout", message=message, headers={"Retry-After": "5"})


@async_api(SearchApiSchema)
async def search_api(request):
    started = time.perf_counter()
    if isinstance(prepared := await prepare(request, _search_start, throttle_scopes=("query",)), JsonResponse):
        return prepared
    data, search, outcome = prepared
    if isinstance(outcome, Rejected):
        return overloaded_response(outcome.admission, priority_class=search.priority_class)
    web_ms = round(elapsed_ms(started) - outcome.enqueue_ms, 1)
    try:
        meta = await result_wait(outcome.task_id, timeout=search.deadline_s, forget=True)
    except ResultTimeout:
        return _timeout(f"the search did not finish within its deadline ({search.deadline_s:.1f}s); retry later")
    if meta["status"] == "SUCCESS" and meta["result"] is None:
        return _timeout("the search's deadline passed before a worker could run it; retry later")
    if meta["status"] == "REVOKED":
        return _timeout("the search expired in the queue before a worker could run it; retry later")
    if meta["status"] != "SUCCESS":
        return error_response(503, code="search_failed", message="the search failed on the worker; it was logged",
                              headers={"Retry-After": "5"})
    return JsonResponse({
        "collection": data["collection"],
        "query": data["query"],
        "mode": data["mode"],
        "priority": search.priority_class,
        "results": meta["result"]["hits"],
        "timings": timings_complete(meta["result"]["timings"], total_ms=elapsed_ms(started), web_ms=web_ms),
    })
