from django.conf import settings
from rest_framework import serializers

from ..filters import FilterError, filters_validate
from ..selectors import MODES


class SearchRequestSerializer(serializers.Serializer):
    collection = serializers.IntegerField(min_value=1)
    query = serializers.CharField(max_length=settings.SLUICE_QUERY_MAX_CHARS, allow_blank=False)
    top_k = serializers.IntegerField(min_value=1, max_value=settings.SLUICE_SEARCH_MAX_TOP_K, default=5)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    filters = serializers.JSONField(required=False, default=dict)

    def validate_filters(self, value):
        try:
            return filters_validate(value)
        except FilterError as exc:
            raise serializers.ValidationError(str(exc)) from None
