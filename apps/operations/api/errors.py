"""One JSON error shape for every API error: ``{"error": {"code", "message", "fields"?}}``.

DRF's exceptions pass through ``exception_handler``; anything unexpected is logged and
turned into a JSON 500 that names the request id instead of an HTML page.
"""
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

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


def exception_handler(exc, context):
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
    """``handler500``: API paths answer in the API's JSON error shape."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as django_server_error

    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code="internal_error", message="An unexpected error occurred; it was logged."),
                            status=500)
    return django_server_error(request)
