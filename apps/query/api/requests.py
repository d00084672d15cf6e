"""From an HTTP request to the query path's ``Request``: validation, the caller's access to
the collection (404 otherwise), its vectors' model (409 when the configured encoder's
differs), the request's class (400 for a class above the caller's
own) and its deadline."""
from collections.abc import Callable

from django.shortcuts import get_object_or_404

from apps.documents.api.exceptions import collection_model_check
from apps.documents.selectors import collections_for
from apps.operations.api.overload import priority_class_for
from workers.queues import PriorityClass

from ..start import Request


def request_from(drf_request, serializer_class, *, deadline_s: Callable[[dict, PriorityClass, str], float],
                 response_mode: Callable[[dict], str] = lambda data: "sync") -> tuple[dict, Request]:
    """``(validated data, Request)``; ``response_mode(data)`` and ``deadline_s(data, class,
    mode)`` decide the two that depend on the endpoint."""
    serializer = serializer_class(data=drf_request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    collection = get_object_or_404(collections_for(user=drf_request.user), pk=data["collection"])
    collection_model_check(collection)  # 409: its vectors are another model's (a query is embedded)
    priority_class = PriorityClass(priority_class_for(drf_request, requested=data.get("priority")))
    mode = response_mode(data)
    return data, Request(
        user=drf_request.user, collection=collection, query=data["query"], mode=data["mode"], top_k=data["top_k"],
        filters=data["filters"], priority_class=priority_class, deadline_s=deadline_s(data, priority_class, mode),
        response_mode=mode,
    )
