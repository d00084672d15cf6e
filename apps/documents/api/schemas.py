"""OpenAPI documentation of the bodies the documents views build by hand (uploads, the
paginated document list, conflicts); the model serializers document themselves."""
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from apps.operations.api.schema import ErrorSerializer

from .serializers import DocumentSerializer, DocumentTextSerializer

DOCUMENT_LIST = inline_serializer(name="PaginatedDocumentList", fields={
    "count": serializers.IntegerField(),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": DocumentSerializer(many=True),
})

_BATCH = inline_serializer(name="DocumentBatch", fields={"documents": DocumentTextSerializer(many=True)})
_FILES = inline_serializer(name="DocumentFiles", fields={
    "files": serializers.ListField(child=serializers.FileField(), help_text="one or more files (pdf, html, markdown, text)"),
    "metadata": serializers.CharField(required=False, help_text="a JSON object, applied to every file"),
    "title": serializers.CharField(required=False, help_text="the title, when a single file is sent"),
})
UPLOAD_REQUEST = {
    "application/json": PolymorphicProxySerializer(
        component_name="DocumentUpload", serializers=[DocumentTextSerializer, _BATCH], resource_type_field_name=None,
    ),
    "multipart/form-data": _FILES,
}


class _UploadedDocument(DocumentSerializer):
    duplicate = serializers.BooleanField(help_text="the same content was already in the collection")

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "duplicate"]
        read_only_fields = fields


UPLOAD_RESPONSE = inline_serializer(name="UploadResult", fields={"documents": _UploadedDocument(many=True)})

CONFLICT = OpenApiResponse(ErrorSerializer, description="The new text is another document's in this collection "
                                                        "(`document` names it).")

MODEL_CONFLICT = OpenApiResponse(ErrorSerializer, description=(
    "`code: embedding_model_mismatch`: the collection's vectors are of another model than the configured encoder's "
    "(`collection_model`, `configured_model`); nothing was stored. The message says how to fix it."))
