"""Thin REST views over collections and their shares (the documents services and selectors)."""
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Collection, CollectionShare
from ..selectors import WRITE, collections_for, collections_with_access
from ..services.ingestion import (
    collection_create,
)
from ..services.sharing import collection_share, collection_unshare
from .serializers import CollectionSerializer, CollectionShareSerializer


class IsOwnerForChanges(BasePermission):
    """Anyone who can read a collection sees it; only its owner renames or deletes it."""

    message = "only the collection's owner can change or delete it, or change its shares"

    def has_object_permission(self, request, view, obj: Collection) -> bool:
        return request.method in SAFE_METHODS or obj.owner_id == request.user.pk


def collection_for_write(*, user, collection_id: int) -> Collection:
    """The collection if ``user`` may change its documents; 404 if they cannot even read it,
    403 if they can only read it."""
    collection = get_object_or_404(collections_with_access(user=user), pk=collection_id)
    if collection.access not in ("owner", WRITE):
        raise PermissionDenied(
            f"you have read access to collection {collection_id}; changing its documents needs write access "
            "(ask its owner to share it with you for writing)"
        )
    return collection


def collection_for_owner(*, user, collection_id: int) -> Collection:
    collection = get_object_or_404(collections_for(user=user), pk=collection_id)
    if collection.owner_id != user.pk:
        raise PermissionDenied(IsOwnerForChanges.message)
    return collection


class CollectionViewSet(viewsets.ModelViewSet):
    """``/api/v1/collections/``: the collections the caller owns or that are shared with them."""

    serializer_class = CollectionSerializer
    permission_classes = [IsAuthenticated, IsOwnerForChanges]

    def get_queryset(self):
        return (collections_with_access(user=self.request.user).select_related("owner")
                .annotate(document_count=Count("documents")).order_by("id"))

    def perform_create(self, serializer):
        data = serializer.validated_data
        collection = collection_create(owner=self.request.user, name=data["name"], description=data.get("description", ""))
        collection.access, collection.document_count = "owner", 0  # as the list shows it
        serializer.instance = collection


class CollectionSharesApi(APIView):
    """``GET`` a collection's shares; ``POST`` shares it with a user or group (or changes
    that share's access). Owner only."""

    parser_classes = [JSONParser]

    @extend_schema(operation_id="collection_shares_list", tags=["collections"],
                   responses={200: CollectionShareSerializer(many=True)})
    def get(self, request, collection_id: int):
        collection = collection_for_owner(user=request.user, collection_id=collection_id)
        shares = collection.shares.select_related("user", "group")
        return Response(CollectionShareSerializer(shares, many=True).data)

    @extend_schema(operation_id="collection_shares_create", tags=["collections"], request=CollectionShareSerializer,
                   responses={201: CollectionShareSerializer,
                              200: OpenApiResponse(CollectionShareSerializer, description="the share's access changed")})
    def post(self, request, collection_id: int):
        collection = collection_for_owner(user=request.user, collection_id=collection_id)
        serializer = CollectionShareSerializer(data=request.data, context={"collection": collection})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        share, created = collection_share(
            collection=collection, user=data.get("user"), group=data.get("group"), access=data["access"]
        )
        return Response(CollectionShareSerializer(share).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CollectionShareDetailApi(APIView):
    """``DELETE`` removes a share. Owner only."""

    @extend_schema(operation_id="collection_shares_destroy", tags=["collections"], responses={204: None})
    def delete(self, request, collection_id: int, share_id: int):
        collection = collection_for_owner(user=request.user, collection_id=collection_id)
        share = get_object_or_404(CollectionShare.objects.filter(collection=collection), pk=share_id)
        collection_unshare(share=share)
        return Response(status=status.HTTP_204_NO_CONTENT)
