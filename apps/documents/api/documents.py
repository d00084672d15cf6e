"""Thin REST views over a collection's documents: upload, list, status, update, reindex, delete."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.operations.api.pagination import LimitOffsetPagination
from apps.operations.api.schema import ErrorSerializer

from ..models import Document
from ..selectors import collections_for, documents_for
from ..services.ingestion import (
    DocumentConflict,
    UploadItem,
    document_delete,
    document_reindex,
    document_update,
    documents_upload,
)
from ..services.parsing import format_content_type
from .exceptions import collection_model_check
from .schemas import CONFLICT, DOCUMENT_LIST, MODEL_CONFLICT, UPLOAD_REQUEST, UPLOAD_RESPONSE
from .collections import collection_for_write
from .serializers import DocumentSerializer, DocumentUpdateSerializer


from .uploads import items_from_files, items_from_json, request_size_check


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
        responses={202: UPLOAD_RESPONSE, 200: OpenApiResponse(UPLOAD_RESPONSE, description="all were duplicates"),
                   409: MODEL_CONFLICT},
    )
    def post(self, request, collection_id: int):
        request_size_check(request)
        collection = collection_for_write(user=request.user, collection_id=collection_id)
        collection_model_check(collection)
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
        409: OpenApiResponse(ErrorSerializer, description=f"{CONFLICT.description} Or: {MODEL_CONFLICT.description}")}),
    reindex=extend_schema(request=None, responses={202: DocumentSerializer, 409: MODEL_CONFLICT}),
    destroy=extend_schema(responses={204: None}),
)
class DocumentViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """``/api/v1/documents/{id}/``: status and progress; ``PATCH`` to update; ``DELETE``;
    ``POST .../reindex/``."""

    serializer_class = DocumentSerializer
    parser_classes = [JSONParser]

    def get_queryset(self):
        return documents_for(user=self.request.user)

    def _writable(self, *, embeds: bool = False) -> Document:
        """The document if the caller may change it; ``embeds``: the change embeds text,
        so the collection's vectors must be the configured encoder's (409 otherwise)."""
        document = self.get_object()
        collection = collection_for_write(user=self.request.user, collection_id=document.collection_id)
        if embeds:
            collection_model_check(collection)
        return document

    def partial_update(self, request, pk=None):
        serializer = DocumentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        document = self._writable(embeds="text" in data)
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
        document = document_reindex(document=self._writable(embeds=True))
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)
