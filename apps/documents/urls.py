from django.urls import path
from rest_framework.routers import SimpleRouter

from .api.views import CollectionDocumentsApi, CollectionViewSet, DocumentViewSet

router = SimpleRouter()
router.register("collections", CollectionViewSet, basename="collection")
router.register("documents", DocumentViewSet, basename="document")

urlpatterns = [
    path("collections/<int:collection_id>/documents/", CollectionDocumentsApi.as_view(), name="collection-documents"),
    *router.urls,
]
