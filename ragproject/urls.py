"""URL configuration: the admin and the versioned REST API."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("apps.operations.metrics_urls")),  # /metrics, outside the versioned API
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/v1/", include("apps.operations.urls")),
    path("api/v1/", include("apps.documents.urls")),
    path("api/v1/", include("apps.query.urls")),
]

# Unknown API paths (and crashes) answer in the API's JSON error shape.
handler404 = "apps.operations.api.errors.not_found"
handler500 = "apps.operations.api.errors.server_error"
