"""One JSON error shape for every API error: ``{"error": {"code", "message", "fields"?}}``.

DRF's exceptions pass through ``exception_handler``; a part that is down (the primary,
Redis, the broker) is a 503 ``unavailable`` with ``Retry-After`` (``unavailable_error``),
never a 500; anything else unexpected is logged and turned into a JSON 500 instead of an
HTML page. docs/operations.md, "Failure modes".
"""
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from workers.errors import DATABASE_ERRORS, REDIS_ERRORS

logger = logging.getLogger(__name__)


def error_body(*, code: str, message: str, fields: dict | None = None, **extra) -> dict:
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    body.update(extra)
    return {"error": body}


def _message_from(detail) -> str:
    if isinstance(detail, list):
        return "; ".join(_message_from(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_message_from(v)}" for k, v in detail.items())
    return str(detail)


# Seconds a caller is told to wait when a part is down: about how long a restarted
# Postgres or Redis takes to come back.
UNAVAILABLE_RETRY_AFTER = 5


class Unavailable(exceptions.APIException):
    """A part Sluice needs is down: 503 + Retry-After, naming the part."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    wait = UNAVAILABLE_RETRY_AFTER  # DRF's exception handler turns it into Retry-After

    def __init__(self, *, part: str, message: str):
        super().__init__(detail=message, code="unavailable")
        self.error_extra = {"part": part, "retry_after": self.wait}


def unavailable_error(exc: BaseException) -> Unavailable | None:
    """The 503 for an error that means a part is down (a lost or refused database
    connection, Redis or the broker unreachable); None for any other error."""
    if isinstance(exc, Unavailable):
        return exc
    if isinstance(exc, DATABASE_ERRORS):
        return Unavailable(part="database", message=(
            "Sluice cannot reach its database right now (restarting or down); retry in a few seconds."))
    if isinstance(exc, REDIS_ERRORS):
        return Unavailable(part="redis", message=(
            "Sluice cannot reach its queues and caches (Redis) right now; retry in a few seconds."))
    return None


def unavailable_response(request, unavailable: Unavailable):
    """The 503 for ``unavailable``: the API's JSON error shape under /api/, plain text
    elsewhere (the admin); ``Retry-After`` either way."""
    from django.http import HttpResponse, JsonResponse

    if request.path.startswith("/api/"):
        response = JsonResponse(error_body(code="unavailable", message=str(unavailable.detail),
                                           **unavailable.error_extra), status=503)
    else:
        response = HttpResponse(f"{unavailable.detail}\n", status=503, content_type="text/plain")
    response["Retry-After"] = str(unavailable.wait)
    return response


def exception_handler(exc, context):
    unavailable = unavailable_error(exc)
    if unavailable is not None and unavailable is not exc:
        logger.warning("%s unavailable: %r", unavailable.error_extra["part"], exc)
        exc = unavailable
    # The same translation DRF applies, done first so the error code is the API one.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            error_body(code="internal_error", message="An unexpected error occurred; it was logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else None
        response.data = error_body(
            code="invalid", message="The request is invalid: " + _message_from(detail), fields=fields
        )
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        response.data = error_body(
            code=code, message=_message_from(getattr(exc, "detail", str(exc))), **getattr(exc, "error_extra", {})
        )
    return response


def not_found(request, exception=None):
    """``handler404``: API paths answer in the API's JSON error shape, others as Django does."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="not_found", message=(
            f"no API endpoint at {request.path}; the endpoints are listed at /api/v1/docs/")), status=404)
    return page_not_found(request, exception)


def server_error(request):
    """``handler500``: API paths answer in the API's JSON error shape; an error raised
    because a part is down (e.g. the session lookup of a middleware while the primary
    restarts) is a 503 with Retry-After, as UnavailableMiddleware makes it for views."""
    import sys

    from django.http import JsonResponse
    from django.views.defaults import server_error as django_server_error

    unavailable = unavailable_error(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if unavailable is not None:
        return unavailable_response(request, unavailable)
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="internal_error", message="An unexpected error occurred; it was logged."),
                            status=500)
    return django_server_error(request)
