"""How drf-spectacular describes API key authentication in the OpenAPI schema."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`manage.py create_api_key` or the admin), sent as `Authorization: Bearer <key>` "
                           "or `Authorization: Api-Key <key>`.",
        }
