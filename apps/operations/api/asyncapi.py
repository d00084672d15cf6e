"""Helpers for async Django views that speak the same API as the DRF views: DRF
authentication and parsing (run in a worker thread, briefly), and the JSON error shape.

Every database access of an async view goes through ``in_thread``: the executor threads
that run it keep their own connections, which Django's per-request
``close_old_connections`` (run by the request_started/finished signals in another thread)
never sees. Without it, a connection that died once (a Postgres restart) failed every
later request that landed on that thread.
"""
import functools
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.settings import api_settings

from apps.accounts.throttling import QueryRateThrottle

from .errors import error_body, exception_handler

# Extra throttles an async view can ask for by scope name.
SCOPED_THROTTLES = {"query": QueryRateThrottle}


def in_thread(fn: Callable) -> Callable:
    """``sync_to_async(fn, thread_sensitive=False)`` with Django's request-boundary
    connection hygiene in the thread that runs ``fn``: before, a connection that failed
    or is past its age is closed and a reused one is health-checked at first use
    (``CONN_HEALTH_CHECKS``); after, one that failed during ``fn`` is dropped. This covers
    every alias used in the thread, replicas included."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


def error_response(status: int, *, code: str, message: str, headers: dict | None = None, **extra) -> JsonResponse:
    response = JsonResponse(error_body(code=code, message=message, **extra), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _drf_request(request) -> Request:
    return Request(
        request,
        parsers=[JSONParser()],
        authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES],
    )


def _throttle_check(drf_request: Request, throttles: Sequence[type]) -> None:
    """As APIView.check_throttles: every throttle counts the request; 429 with the longest wait."""
    waits = [throttle.wait() for throttle in (cls() for cls in throttles)
             if not throttle.allow_request(drf_request, None)]
    if waits:
        raise exceptions.Throttled(wait=max((w for w in waits if w is not None), default=None))


def _prepare(request, handler: Callable[[Request], Any], throttles: Sequence[type]):
    drf_request = _drf_request(request)
    try:
        if not drf_request.user or not drf_request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        _throttle_check(drf_request, throttles)
        return handler(drf_request)
    except Exception as exc:  # rendered exactly as the DRF views render it
        response = exception_handler(exc, {"view": None, "request": drf_request})
        headers = {k: v for k, v in response.items() if k.lower() != "content-type"}  # e.g. WWW-Authenticate
        return JsonResponse(response.data, status=response.status_code, headers=headers)


async def prepare(request, handler: Callable[[Request], Any], *, method: str = "POST",
                  throttle_scopes: Sequence[str] = ()):
    """Authenticate, throttle (the DRF views' throttles plus those of ``throttle_scopes``,
    e.g. ``query``), parse and run ``handler(drf_request)`` in a thread; API errors come
    back as a JsonResponse, anything else is ``handler``'s return value."""
    if request.method != method:
        return error_response(405, code="method_not_allowed", message=f"Method {request.method} not allowed; use {method}.")
    throttles = [*api_settings.DEFAULT_THROTTLE_CLASSES, *(SCOPED_THROTTLES[scope] for scope in throttle_scopes)]
    return await in_thread(_prepare)(request, handler, throttles)


def documented_by(schema_view: type):
    """Document an async function view in the OpenAPI schema as ``schema_view`` (an APIView
    whose methods carry ``extend_schema``); drf-spectacular finds views by their ``cls``."""

    def attach(view):
        view.cls = schema_view
        view.initkwargs = {}
        return view

    return attach


def async_api(schema_view: type):
    """An async API view: documented as ``schema_view`` and CSRF-exempt as DRF's views are
    (session-authenticated requests are CSRF-checked by DRF itself in ``prepare``)."""
    from django.views.decorators.csrf import csrf_exempt

    def decorate(view):
        return documented_by(schema_view)(csrf_exempt(view))

    return decorate
