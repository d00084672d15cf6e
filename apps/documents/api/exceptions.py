"""API errors specific to uploads (rendered by apps.operations.api.errors)."""
from rest_framework import status
from rest_framework.exceptions import APIException

from ..services.embedding import EmbeddingModelMismatch, embedding_model_check
from ..services.parsing import UnsupportedFormat


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class UnsupportedDocumentType(APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_format"

    def __init__(self, *, name: str, exc: UnsupportedFormat):
        super().__init__(f"{name}: {exc}")
        self.error_extra = {"supported": exc.supported}


class EmbeddingModelConflict(APIException):
    """409: the collection's vectors are of another model than the configured encoder's."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "embedding_model_mismatch"

    def __init__(self, exc: EmbeddingModelMismatch):
        super().__init__(str(exc))
        self.error_extra = {"collection_model": exc.collection_model, "configured_model": exc.configured_model}


def collection_model_check(collection) -> None:
    """409 unless the configured encoder reads and writes ``collection``'s vectors."""
    try:
        embedding_model_check(collection_id=collection.pk, collection_model=collection.embedding_model)
    except EmbeddingModelMismatch as exc:
        raise EmbeddingModelConflict(exc) from None
