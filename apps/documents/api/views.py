"""Thin REST views over the documents services and selectors."""
from django.db.models import Count
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Collection, CollectionShare, Document
from ..selectors import WRITE, collections_for, collections_with_access, documents_for
from ..services.ingestion import (
    DocumentConflict,
    UploadItem,
    collection_create,
    document_delete,
    document_reindex,
    document_update,
    documents_upload,
)
from ..services.parsing import format_content_type
from ..services.sharing import collection_share, collection_unshare
from .schemas import CONFLICT, DOCUMENT_LIST, UPLOAD_REQUEST, UPLOAD_RESPONSE
from .serializers import CollectionSerializer, CollectionShareSerializer, DocumentSerializer, DocumentUpdateSerializer


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
from .uploads import items_from_files, items_from_json, request_size_check


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


class CollectionDocumentsApi(APIView):
    """``GET`` lists a collection's documents (``?status=``); ``POST`` uploads new ones."""

    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="collection_documents_list", tags=["documents"], responses={200: DOCUMENT_LIST},
        parameters=[
            OpenApiParameter("status", enum=Document.Status.values, required=False),
            OpenApiParameter("limit", int, required=False), OpenApiParameter("offset", int, required=False),
        ],
    )
    def get(self, request, collection_id: int):
        collection = get_object_or_404(collections_for(user=request.user), pk=collection_id)
        documents = documents_for(user=request.user).filter(collection=collection)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Document.Status.values:
                raise ValidationError({"status": [f"must be one of {', '.join(Document.Status.values)}"]})
            documents = documents.filter(status=wanted)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(documents.order_by("id"), request, view=self)
        return paginator.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="collection_documents_upload", tags=["documents"], request=UPLOAD_REQUEST,
        responses={202: UPLOAD_RESPONSE, 200: OpenApiResponse(UPLOAD_RESPONSE, description="all were duplicates")},
    )
    def post(self, request, collection_id: int):
        request_size_check(request)
        collection = collection_for_write(user=request.user, collection_id=collection_id)
        if request.content_type.startswith("multipart/"):
            files = request.FILES.getlist("files") + request.FILES.getlist("file")
            if not files:
                raise ValidationError({"files": ["attach one or more files in the `files` field"]})
            items = items_from_files(files, metadata_raw=request.data.get("metadata"), title=request.data.get("title", ""))
        else:
            items = items_from_json(request.data)
        results = documents_upload(collection=collection, items=items)
        body = {
            "documents": [
                {**DocumentSerializer(document).data, "duplicate": not created} for document, created in results
            ]
        }
        any_new = any(created for _, created in results)
        return Response(body, status=status.HTTP_202_ACCEPTED if any_new else status.HTTP_200_OK)


@extend_schema_view(
    partial_update=extend_schema(request=DocumentUpdateSerializer, responses={
        200: DocumentSerializer, 202: OpenApiResponse(DocumentSerializer, description="new text: a new version is queued"),
        409: CONFLICT}),
    reindex=extend_schema(request=None, responses={202: DocumentSerializer}),
    destroy=extend_schema(responses={204: None}),
)
class DocumentViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """``/api/v1/documents/{id}/``: status and progress; ``PATCH`` to update; ``DELETE``;
    ``POST .../reindex/``."""

    serializer_class = DocumentSerializer
    parser_classes = [JSONParser]

    def get_queryset(self):
        return documents_for(user=self.request.user)

    def _writable(self) -> Document:
        document = self.get_object()
        collection_for_write(user=self.request.user, collection_id=document.collection_id)
        return document

    def partial_update(self, request, pk=None):
        document = self._writable()
        serializer = DocumentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = None
        if "text" in data:
            item = UploadItem(data=data["text"].encode(), format=data["format"], content_type=format_content_type(data["format"]))
        try:
            document = document_update(document=document, item=item, title=data.get("title"), metadata=data.get("metadata"))
        except DocumentConflict as exc:
            return Response(
                {"error": {"code": "conflict", "message": str(exc), "document": exc.other.pk}},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED if item else status.HTTP_200_OK)

    def destroy(self, request, pk=None):
        document_delete(document=self._writable())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def reindex(self, request, pk=None):
        document = document_reindex(document=self._writable())
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


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
