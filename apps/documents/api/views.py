"""Thin REST views over the documents services and selectors."""
from django.db.models import Count
from django.shortcuts import get_object_or_404
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Document
from ..selectors import collections_for, documents_for
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
from .serializers import CollectionSerializer, DocumentSerializer, DocumentUpdateSerializer
from .uploads import items_from_files, items_from_json, request_size_check


class CollectionViewSet(viewsets.ModelViewSet):
    """``/api/v1/collections/``: the caller's collections."""

    serializer_class = CollectionSerializer

    def get_queryset(self):
        return collections_for(user=self.request.user).annotate(document_count=Count("documents"))

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = collection_create(
            owner=self.request.user, name=data["name"], description=data.get("description", "")
        )


class CollectionDocumentsApi(APIView):
    """``GET`` lists a collection's documents (``?status=``); ``POST`` uploads new ones."""

    parser_classes = [JSONParser, MultiPartParser]

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

    def post(self, request, collection_id: int):
        request_size_check(request)
        collection = get_object_or_404(collections_for(user=request.user), pk=collection_id)
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


class DocumentViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """``/api/v1/documents/{id}/``: status and progress; ``PATCH`` to update; ``DELETE``;
    ``POST .../reindex/``."""

    serializer_class = DocumentSerializer
    parser_classes = [JSONParser]

    def get_queryset(self):
        return documents_for(user=self.request.user)

    def partial_update(self, request, pk=None):
        document = self.get_object()
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

    def perform_destroy(self, instance):
        document_delete(document=instance)

    @action(detail=True, methods=["post"])
    def reindex(self, request, pk=None):
        document = document_reindex(document=self.get_object())
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)
