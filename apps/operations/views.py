"""Thin HTTP views over the operations selectors and the metrics: the health endpoint
(a cheap status for anyone, the full report for staff and the metrics token) and
``/metrics``."""
import hmac
import threading
import time

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.accounts.throttling import AnonProbeThrottle, KeyRateThrottle

from .metrics import counter, metric_inc, metrics_render
from .selectors import health_report

HEALTH_CACHE_S = 1.0  # how old a report anonymous callers may be served
HEALTH_CHECKS = counter("sluice_health_checks", "Health reports computed by the web tier (anonymous probes share "
                                                "one a second per process)")
METRICS_TOKEN = "metrics-token"  # request.auth of a caller that sent SLUICE_METRICS_TOKEN

_health_lock = threading.Lock()
_health_last: tuple[float, dict] | None = None  # (time.monotonic() when checked, report)


def health_checked(*, max_age: float) -> dict:
    """This process's last health report if it is under ``max_age`` seconds old, else a
    new one. Callers wait on the lock for a check in progress rather than starting their
    own, so a flood of probes costs one check per ``max_age``."""
    global _health_last
    with _health_lock:
        if _health_last is not None and time.monotonic() - _health_last[0] < max_age:
            return _health_last[1]
        report = health_report()
        metric_inc(HEALTH_CHECKS)
        _health_last = (time.monotonic(), report)
        return report


def metrics_token_sent(request) -> bool:
    """The request carries ``Authorization: Bearer <SLUICE_METRICS_TOKEN>`` (compared in
    constant time, so response timing does not reveal how much of a guess was right)."""
    token = settings.SLUICE_METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


class MetricsTokenAuthentication(BaseAuthentication):
    """The monitoring system: no user, ``request.auth == METRICS_TOKEN``. Placed before API
    key authentication, which would take the ``Bearer`` header for an unknown key."""

    def authenticate(self, request):
        return (AnonymousUser(), METRICS_TOKEN) if metrics_token_sent(request) else None

    def authenticate_header(self, request):
        return "Bearer"


class MetricsTokenScheme(OpenApiAuthenticationExtension):
    target_class = MetricsTokenAuthentication
    name = "metricsToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "`SLUICE_METRICS_TOKEN`: the detailed health report"}


_DETAIL = "Staff and the metrics token only."
_HEALTH = inline_serializer(name="Health", fields={
    "status": serializers.ChoiceField(choices=["ok", "degraded", "unavailable"]),
    "failing": serializers.ListField(child=serializers.CharField(), required=False, help_text=_DETAIL),
    "degraded": serializers.ListField(child=serializers.CharField(), required=False, help_text=_DETAIL),
    "databases": serializers.DictField(required=False, help_text="primary and each replica: ok, lag, WAL positions. "
                                                                 + _DETAIL),
    "redis": serializers.DictField(required=False, help_text=_DETAIL),
    "redis_cache": serializers.DictField(required=False, help_text=_DETAIL + " The cache Redis: down means degraded "
                                         "(nothing is cached), not failing."),
    "queues": serializers.DictField(required=False, help_text="per queue: depth, live workers. " + _DETAIL),
})


class HealthApi(APIView):
    """``GET /api/v1/health/``: 200 when every required part is up (``status`` is
    ``degraded`` when a replica is down or lagging: reads fall back to the primary), 503
    otherwise.

    Anonymous callers (load balancers, ``workers.command health web``, the stack manager)
    get only ``{"status": ...}``, from this process's last check when it is under
    ``HEALTH_CACHE_S`` old. Staff users and the metrics token get the whole report
    (``failing`` names the failing parts), checked now. Anonymous calls count against the
    ``anon`` throttle except direct ones from the host itself (``AnonProbeThrottle``)."""

    permission_classes = [AllowAny]
    authentication_classes = [MetricsTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    throttle_classes = [KeyRateThrottle, AnonProbeThrottle]

    @extend_schema(operation_id="health", tags=["operations"], description=(
        "200 when every required part is up (`status` is `degraded` when a replica is down or lagging: reads fall "
        "back to the primary), 503 otherwise. Anonymous callers get only `status`, from a check at most a second "
        "old; staff users and `Authorization: Bearer <SLUICE_METRICS_TOKEN>` get the whole report, checked now."),
        responses={
        200: _HEALTH, 503: OpenApiResponse(_HEALTH, description="some part is down; `failing` names it")})
    def get(self, request):
        if request.auth == METRICS_TOKEN or request.user.is_staff:
            report = health_checked(max_age=0)
        else:
            report = {"status": health_checked(max_age=HEALTH_CACHE_S)["status"]}
        return Response(report, status=503 if report["status"] == "unavailable" else 200)


def metrics_view(request):
    """``GET /metrics``: Prometheus text format. With ``SLUICE_METRICS_TOKEN`` set, the
    scraper must send ``Authorization: Bearer <token>``; without one the endpoint is open
    only where ``SLUICE_METRICS_PUBLIC`` allows it (local and test stacks), so production
    never exposes it by accident."""
    if settings.SLUICE_METRICS_TOKEN:
        if not metrics_token_sent(request):
            return HttpResponse("metrics need Authorization: Bearer <SLUICE_METRICS_TOKEN>\n", status=401,
                                content_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
    elif not settings.SLUICE_METRICS_PUBLIC:
        return HttpResponse("metrics are disabled: set SLUICE_METRICS_TOKEN and scrape with it\n", status=403,
                            content_type="text/plain")
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
