"""Pagination for every list: ``?limit=&offset=``, ``PAGE_SIZE`` by default, at most
``SLUICE_PAGE_MAX_LIMIT`` per page; a larger or malformed ``limit`` is a 400 naming the
limit rather than being clamped silently (docs/access.md, "Input limits")."""
from django.conf import settings
from rest_framework import pagination
from rest_framework.exceptions import ValidationError


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    @property
    def max_limit(self) -> int:
        return settings.SLUICE_PAGE_MAX_LIMIT

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                limit = 0
            if not 1 <= limit <= self.max_limit:
                raise ValidationError({self.limit_query_param: [
                    f"must be a whole number from 1 to {self.max_limit} (SLUICE_PAGE_MAX_LIMIT); page through "
                    "longer lists with offset"]})
        return super().get_limit(request)

    def get_schema_operation_parameters(self, view):
        """The OpenAPI parameters, with ``limit``'s bounds stated."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"] = {**parameter.get("schema", {}), "minimum": 1, "maximum": self.max_limit}
                parameter["description"] = f"items per page, at most {self.max_limit} (SLUICE_PAGE_MAX_LIMIT)"
        return parameters
