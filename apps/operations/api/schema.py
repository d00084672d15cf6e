"""OpenAPI 3 (drf-spectacular) pieces shared by every app: the error shape, the standard
error responses added to every operation, and how the async views are documented.

Served at ``/api/v1/schema/`` with Swagger UI (``/api/v1/docs/``) and Redoc
(``/api/v1/redoc/``), both from drf-spectacular-sidecar's bundled assets (no CDN).
"""
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

# Statuses every authenticated operation may answer, and what they mean.
_COMMON = {
    "401": "Not authenticated: send `Authorization: Api-Key <key>` (or `Bearer <key>`).",
    "403": "Authenticated but not allowed (e.g. read access where write is needed).",
    "429": "Too many requests for this key; retry after `Retry-After` seconds.",
}
_WITH_BODY = {
    "400": "The request is invalid; `fields` names each bad field and why.",
    "413": "The body is larger than the limits (SLUICE_JSON_MAX_BYTES, SLUICE_UPLOAD_MAX_*).",
    "415": "Unsupported media type.",
}
_WITH_PATH_ID = {"404": "No such object, or not one the caller may see."}

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(help_text="machine-readable, e.g. invalid, not_found, throttled"),
                "message": serializers.CharField(help_text="what is wrong and what to do"),
                "fields": serializers.DictField(required=False, help_text="per-field problems (400 only)"),
            },
        )
    },
)


def document_errors(result, generator, request, public):
    """Postprocessing hook: every operation documents the error statuses it can answer,
    all with the ``Error`` shape, unless it documents them itself."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {}
            if operation.get("security") != [{}] and operation.get("security") is not None:
                statuses.update(_COMMON)
            if "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", [])):
                statuses.update({k: v for k, v in _WITH_BODY.items() if k == "400" or "requestBody" in operation})
            if "{" in path:
                statuses.update(_WITH_PATH_ID)
            responses = operation.setdefault("responses", {})
            for status, description in statuses.items():
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": error_ref}},
                })
    return result
