"""URL configuration: the admin and the versioned REST API."""
from django.contrib import admin
from django.urls import include, path

from apps.operations.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include("apps.operations.urls")),
    path("api/v1/", include("apps.documents.urls")),
    path("api/v1/", include("apps.retrieval.urls")),
]
