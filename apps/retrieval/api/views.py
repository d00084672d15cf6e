"""``POST /api/v1/search/``: retrieval only. An async view: the request waits on the
result in Redis without holding a server thread."""
import time

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from apps.documents.selectors import collections_for
from apps.operations.api.asyncapi import documented_by, error_response, prepare
from apps.operations.api.overload import broker_errors_as_503, overloaded_response, priority_class_for
from apps.operations.overload.admission import CLASS_PRIORITY, admission_policy, admission_record
from workers.results import ResultTimeout, result_wait

from ..tasks import search_enqueue
from .schemas import SearchApiSchema
from .serializers import SearchRequestSerializer
from .timing import elapsed_ms, timings_complete


def _search_start(request) -> dict:
    serializer = SearchRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    collection = get_object_or_404(collections_for(user=request.user), pk=data["collection"])
    priority_class = priority_class_for(request, requested=data.get("priority"))
    deadline_s = min(settings.SLUICE_SEARCH_TIMEOUT, data["deadline_ms"] / 1000) if data.get("deadline_ms") \
        else settings.SLUICE_SEARCH_TIMEOUT
    with broker_errors_as_503():
        admission = admission_policy(generation_backend=settings.SLUICE_GENERATION_BACKEND).allow_request(
            priority_class=priority_class, deadline_s=deadline_s, needs_generation=False)
    admission_record(endpoint="search", priority_class=priority_class, admission=admission)
    if admission.route == "reject":
        return {"rejected": admission, "priority_class": priority_class}
    enqueue_started = time.perf_counter()
    with broker_errors_as_503():
        task_id = search_enqueue(
            collection_ids=[collection.pk], query=data["query"], mode=data["mode"], top_k=data["top_k"],
            filters=data["filters"], priority=int(CLASS_PRIORITY[priority_class]), expires=deadline_s,
        )
    return {"task_id": task_id, "enqueue_ms": elapsed_ms(enqueue_started), "deadline_s": deadline_s,
            "priority_class": priority_class, **data}


@documented_by(SearchApiSchema)
@csrf_exempt  # as DRF's views: session-authenticated requests are CSRF-checked by DRF itself
async def search_api(request):
    started = time.perf_counter()
    prepared = await prepare(request, _search_start, throttle_scopes=("query",))
    if isinstance(prepared, JsonResponse):
        return prepared
    if "rejected" in prepared:
        return overloaded_response(prepared["rejected"], priority_class=prepared["priority_class"])
    web_ms = round(elapsed_ms(started) - prepared["enqueue_ms"], 1)
    try:
        meta = await result_wait(prepared["task_id"], timeout=prepared["deadline_s"])
    except ResultTimeout:
        return error_response(
            504, code="timeout",
            message=f"the search did not finish within its deadline ({prepared['deadline_s']:.1f}s); retry later",
            headers={"Retry-After": "5"},
        )
    if meta["status"] == "SUCCESS" and meta["result"] is None:
        return error_response(504, code="timeout", headers={"Retry-After": "5"},
                              message="the search's deadline passed before a worker could run it; retry later")
    if meta["status"] == "REVOKED":
        return error_response(504, code="timeout", headers={"Retry-After": "5"},
                              message="the search expired in the queue before a worker could run it; retry later")
    if meta["status"] != "SUCCESS":
        return error_response(503, code="search_failed", message="the search failed on the worker; it was logged",
                              headers={"Retry-After": "5"})
    return JsonResponse({
        "collection": prepared["collection"],
        "query": prepared["query"],
        "mode": prepared["mode"],
        "priority": prepared["priority_class"],
        "results": meta["result"]["hits"],
        "timings": timings_complete(meta["result"]["timings"], total_ms=elapsed_ms(started), web_ms=web_ms),
    })
