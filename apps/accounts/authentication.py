"""DRF authentication by API key: ``Authorization: Api-Key <key>`` (``Bearer <key>`` is
accepted too). Used by the DRF views and by the async views (apps/operations/api/asyncapi.py)."""
from rest_framework import authentication, exceptions

from .selectors import api_key_lookup

SCHEMES = ("api-key", "bearer")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() not in SCHEMES:
            return None  # not ours: session or basic auth may apply
        raw_key = raw_key.strip()
        if not raw_key or " " in raw_key:
            raise exceptions.AuthenticationFailed("Malformed Authorization header; send `Authorization: Api-Key <key>`.")
        key = api_key_lookup(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed(
                "Invalid, revoked or expired API key; create a new one with `manage.py create_api_key` or in the admin."
            )
        return key.user, key

    def authenticate_header(self, request):
        return self.keyword
