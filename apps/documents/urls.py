from django.urls import path
from rest_framework.routers import SimpleRouter

from .api.collections import CollectionShareDetailApi, CollectionSharesApi, CollectionViewSet
from .api.documents import CollectionDocumentsApi, DocumentViewSet

router = SimpleRouter()
router.register("collections", CollectionViewSet, basename="collection")
router.register("documents", DocumentViewSet, basename="document")

urlpatterns = [
    path("collections/<int:collection_id>/documents/", CollectionDocumentsApi.as_view(), name="collection-documents"),
    path("collections/<int:collection_id>/shares/", CollectionSharesApi.as_view(), name="collection-shares"),
    path("collections/<int:collection_id>/shares/<int:share_id>/", CollectionShareDetailApi.as_view(),
         name="collection-share-detail"),
    *router.urls,
]
