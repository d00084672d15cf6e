"""URL configuration: the admin and the versioned REST API."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.operations.urls")),
    path("api/v1/", include("apps.documents.urls")),
    path("api/v1/", include("apps.retrieval.urls")),
]
