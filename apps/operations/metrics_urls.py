"""``/metrics`` (Prometheus), routed at the site's root rather than under /api/v1/."""
from django.urls import path

from .views import metrics_view

urlpatterns = [path("metrics", metrics_view, name="metrics")]
