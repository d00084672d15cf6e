"""Thin HTTP views over the operations selectors."""
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import health_report


class HealthApi(APIView):
    """``GET /api/v1/health/``: 200 when every required part is up, 503 naming the failing parts."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []  # load balancer probes must never see a 429

    def get(self, request):
        report = health_report()
        return Response(report, status=200 if not report["failing"] else 503)
