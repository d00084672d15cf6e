"""API errors specific to uploads (rendered by apps.operations.api.errors)."""
from rest_framework import status
from rest_framework.exceptions import APIException

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
