from django.conf import settings
from rest_framework import serializers

from apps.retrieval.filters import FilterError, filters_validate
from apps.retrieval.selectors import MODES
from workers.queues import PriorityClass


class SearchRequestSerializer(serializers.Serializer):
    collection = serializers.IntegerField(min_value=1)
    query = serializers.CharField(max_length=settings.SLUICE_QUERY_MAX_CHARS, allow_blank=False)
    top_k = serializers.IntegerField(min_value=1, max_value=settings.SLUICE_SEARCH_MAX_TOP_K, default=5)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    filters = serializers.JSONField(required=False, default=dict, help_text=(
        "document metadata key → value or list of values (any of them); `document_ids` → list of ids. At most 20 "
        "keys of 100 values, string values up to SLUICE_FILTER_VALUE_MAX_CHARS characters, SLUICE_FILTERS_MAX_BYTES "
        "as JSON"))
    # Optional downgrade of the caller's class (never an upgrade), and a tighter deadline.
    priority = serializers.ChoiceField(choices=PriorityClass.values, required=False)
    deadline_ms = serializers.IntegerField(min_value=100, max_value=3_600_000, required=False)

    def validate_filters(self, value):
        try:
            return filters_validate(value)
        except FilterError as exc:
            raise serializers.ValidationError(str(exc)) from None


class QueryRequestSerializer(SearchRequestSerializer):
    # `async` is a Python keyword, hence the source mapping.
    run_async = serializers.BooleanField(default=False, required=False)
    stream = serializers.BooleanField(default=False, required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "async" in data:
            data = {**data, "run_async": data["async"]}
            data.pop("async")
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs["run_async"] and attrs["stream"]:
            raise serializers.ValidationError({"stream": ["choose either async or stream, not both"]})
        return attrs
