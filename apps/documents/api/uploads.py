"""Turns an upload request (JSON text(s) or multipart files) into validated ``UploadItem``s.

Everything that can be decided without parsing is checked here, before anything is
written: counts, sizes (413), formats (415), text encodings and metadata (400). Parsing
itself (and a broken PDF) is the worker's job: such a document ends ``failed`` with a
readable error.
"""
import json

from django.conf import settings
from rest_framework import serializers

from ..services.ingestion import MetadataError, UploadItem, metadata_validate
from ..services.parsing import UnsupportedFormat, document_format_detect, format_content_type
from .exceptions import PayloadTooLarge, UnsupportedDocumentType
from .serializers import DocumentTextSerializer


def request_size_check(request) -> None:
    """Refuse oversize bodies from Content-Length, before reading them. (Under ASGI the
    body limit middleware has refused them already; this covers other servers.)"""
    limit = settings.SLUICE_UPLOAD_MAX_REQUEST_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(
            f"the request body is {length} bytes; at most {limit} are accepted "
            "(SLUICE_UPLOAD_MAX_REQUEST_BYTES). Upload fewer or smaller files per request."
        )


def _utf8_check(data: bytes, *, name: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise serializers.ValidationError(
            {"files": [f"{name} is not valid UTF-8 (first bad byte at offset {exc.start}); re-encode it as UTF-8."]}
        ) from None


def items_from_json(data) -> list[UploadItem]:
    if not isinstance(data, dict) or not data:
        raise serializers.ValidationError(
            {"text": ["send a JSON object with `text` (and optional `title`, `format`, `metadata`), "
                      "`documents`: a list of such objects, or multipart `files`"]}
        )
    entries = data["documents"] if "documents" in data else [data]
    if not isinstance(entries, list) or not entries:
        raise serializers.ValidationError({"documents": ["must be a non-empty list of documents"]})
    if len(entries) > settings.SLUICE_UPLOAD_MAX_FILES:
        raise serializers.ValidationError(
            {"documents": [f"at most {settings.SLUICE_UPLOAD_MAX_FILES} documents per request (SLUICE_UPLOAD_MAX_FILES)"]}
        )
    items = []
    for index, entry in enumerate(entries):
        serializer = DocumentTextSerializer(data=entry)
        if not serializer.is_valid():
            errors = serializer.errors
            raise serializers.ValidationError({f"documents[{index}]": errors} if "documents" in data else errors)
        v = serializer.validated_data
        items.append(UploadItem(
            data=v["text"].encode(), format=v["format"], title=v["title"], metadata=v["metadata"],
            content_type=format_content_type(v["format"]),
        ))
    return items


def items_from_files(files, *, metadata_raw, title: str) -> list[UploadItem]:
    if len(files) > settings.SLUICE_UPLOAD_MAX_FILES:
        raise serializers.ValidationError(
            {"files": [f"at most {settings.SLUICE_UPLOAD_MAX_FILES} files per request (SLUICE_UPLOAD_MAX_FILES)"]}
        )
    metadata = {}
    if metadata_raw not in (None, ""):
        try:
            metadata = json.loads(metadata_raw)
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError({"metadata": [f"is not valid JSON: {exc}"]}) from None
        try:
            metadata = metadata_validate(metadata)
        except MetadataError as exc:
            raise serializers.ValidationError({"metadata": [str(exc)]}) from None
    items = []
    for upload in files:
        name = upload.name or "upload"
        if upload.size > settings.SLUICE_UPLOAD_MAX_BYTES:
            raise PayloadTooLarge(
                f"{name} is {upload.size} bytes; the limit is {settings.SLUICE_UPLOAD_MAX_BYTES} (SLUICE_UPLOAD_MAX_BYTES)"
            )
        data = upload.read()
        if not data:
            raise serializers.ValidationError({"files": [f"{name} is empty"]})
        content_type = upload.content_type if upload.content_type != "application/octet-stream" else ""
        try:
            fmt = document_format_detect(data=data, filename=name, content_type=content_type or None)
        except UnsupportedFormat as exc:
            raise UnsupportedDocumentType(name=name, exc=exc) from None
        if fmt in ("text", "markdown"):
            _utf8_check(data, name=name)
        items.append(UploadItem(
            data=data, format=fmt, filename=name, content_type=content_type,
            title=title if len(files) == 1 else "", metadata=metadata,
        ))
    return items
