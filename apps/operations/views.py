"""Thin HTTP views over the operations selectors and the metrics."""
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .metrics import metrics_render
from .selectors import health_report


_HEALTH = inline_serializer(name="Health", fields={
    "status": serializers.ChoiceField(choices=["ok", "unavailable"]),
    "failing": serializers.ListField(child=serializers.CharField()),
    "databases": serializers.DictField(help_text="primary and each replica: ok, lag, WAL positions"),
    "redis": serializers.DictField(),
    "queues": serializers.DictField(help_text="per queue: depth, live workers"),
})


class HealthApi(APIView):
    """``GET /api/v1/health/``: 200 when every required part is up (``status`` is
    ``degraded`` when a replica is down or lagging: reads fall back to the primary), 503
    naming the failing parts otherwise."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []  # load balancer probes must never see a 429

    @extend_schema(operation_id="health", tags=["operations"], responses={
        200: _HEALTH, 503: OpenApiResponse(_HEALTH, description="some part is down; `failing` names it")})
    def get(self, request):
        report = health_report()
        return Response(report, status=200 if not report["failing"] else 503)


def metrics_view(request):
    """``GET /metrics``: Prometheus text format. With ``SLUICE_METRICS_TOKEN`` set, the
    scraper must send ``Authorization: Bearer <token>``; without one the endpoint is open
    only where ``SLUICE_METRICS_PUBLIC`` allows it (local and test stacks), so production
    never exposes it by accident."""
    token = settings.SLUICE_METRICS_TOKEN
    if token:
        if request.headers.get("Authorization", "") != f"Bearer {token}":
            return HttpResponse("metrics need Authorization: Bearer <SLUICE_METRICS_TOKEN>\n", status=401,
                                content_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
    elif not settings.SLUICE_METRICS_PUBLIC:
        return HttpResponse("metrics are disabled: set SLUICE_METRICS_TOKEN and scrape with it\n", status=403,
                            content_type="text/plain")
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)
