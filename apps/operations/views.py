"""Thin HTTP views over the operations selectors."""
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

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
