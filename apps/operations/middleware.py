"""Request latency per endpoint for /metrics: one histogram observation per request,
labelled by the URL pattern's name (bounded cardinality, unlike raw paths), the method
and the status class. Async-capable, so the async views stay on the event loop; there the
Redis write is fired off after the response, never awaited by it."""
import asyncio
import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .metrics import histogram, metric_observe, metric_observe_async

logger = logging.getLogger(__name__)

REQUEST_SECONDS = histogram(
    "sluice_http_request_duration_seconds",
    "Time from the request reaching Django to its response (headers, for a stream), per endpoint",
    labels=["route", "method", "status"],
)

_pending: set[asyncio.Task] = set()  # fire-and-forget writes, referenced until done


def _labels(request, response) -> dict:
    match = getattr(request, "resolver_match", None)
    return {
        "route": match.view_name if match is not None else "unmatched",
        "method": request.method if request.method in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} else "other",
        "status": f"{response.status_code // 100}xx",
    }


class RequestMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        metric_observe(REQUEST_SECONDS, time.perf_counter() - started, **_labels(request, response))
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        task = asyncio.create_task(
            metric_observe_async(REQUEST_SECONDS, time.perf_counter() - started, **_labels(request, response))
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return response


class UnavailableMiddleware:
    """A view that fails because a part is down (the primary, Redis, the broker) answers
    503 + ``Retry-After`` instead of a 500: JSON ``{"error": {"code": "unavailable"}}`` on
    the API, plain text elsewhere (the admin). The DRF views and ``prepare`` already map
    these errors; this catches the rest (an async view's own Redis or database calls)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from .api.errors import unavailable_error, unavailable_response

        unavailable = unavailable_error(exception)
        if unavailable is None:
            return None
        logger.warning("%s %s: %s unavailable: %r", request.method, request.path,
                       unavailable.error_extra["part"], exception)
        return unavailable_response(request, unavailable)
