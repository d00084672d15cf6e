"""The HTTP face of admission control: the 503 a shed request gets, and the 503 when the
queues themselves cannot be reached."""
import contextlib
import logging

from django.http import JsonResponse
from rest_framework import serializers

from workers.errors import REDIS_ERRORS

from ..overload.admission import Admission, priority_allowed, priority_class_of
from .asyncapi import error_response
from .errors import Unavailable


def priority_class_for(request, *, requested: str | None) -> str:
    """The request's class: its credentials' class, or a lower one it asks for (400 for a
    higher one)."""
    own = priority_class_of(auth=request.auth)
    if requested is None:
        return own
    if not priority_allowed(own=own, requested=requested):
        raise serializers.ValidationError(
            {"priority": [f"your credentials allow at most the '{own}' class; ask for '{own}' or a lower one"]})
    return requested


def overloaded_response(admission: Admission, *, priority_class: str, **extra) -> JsonResponse:
    """503 + ``Retry-After``, naming the reason and the estimated waits: the request was
    shed before anything ran (never a hang, never a 500)."""
    waits = ", ".join(f"{stage} {seconds:.1f}s" if seconds is not None else f"{stage} unbounded (no live worker)"
                      for stage, seconds in admission.waits.items())
    return error_response(
        503, code="overloaded", headers={"Retry-After": str(admission.retry_after)},
        message=(f"Sluice is overloaded ({admission.reason}): estimated queue wait {waits} for a "
                 f"{priority_class} request; retry after {admission.retry_after}s"),
        reason=admission.reason, priority=priority_class, retry_after=admission.retry_after,
        estimated_wait_s=admission.waits, **extra,
    )


logger = logging.getLogger(__name__)


@contextlib.contextmanager
def broker_errors_as_503(*, on_error=None):
    """Redis or broker errors while admitting or enqueueing become a 503 with Retry-After
    (``on_error(exc)`` runs first, e.g. to mark a query log row failed), never a 500."""
    try:
        yield
    except REDIS_ERRORS as exc:
        logger.error("queues unavailable: %r", exc)
        if on_error is not None:
            on_error(exc)
        raise Unavailable(part="redis", message=(
            "Sluice cannot reach its queues (Redis) right now; retry in a few seconds.")) from exc
