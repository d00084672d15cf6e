"""Admin for the query log (read-only): filter by outcome, generator, served_by, mode."""
from django.contrib import admin

from apps.operations.admin_records import RecordAdmin

from .models import QueryLog


class LatencyFilter(admin.SimpleListFilter):
    title = "latency"
    parameter_name = "latency"
    BANDS = {"lt100": (None, 100), "100-1000": (100, 1000), "1000-5000": (1000, 5000), "gt5000": (5000, None)}

    def lookups(self, request, model_admin):
        return [("lt100", "< 100 ms"), ("100-1000", "100 ms – 1 s"), ("1000-5000", "1 – 5 s"), ("gt5000", "> 5 s"),
                ("none", "not finished")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(latency_ms__isnull=True)
        if self.value() not in self.BANDS:
            return queryset
        low, high = self.BANDS[self.value()]
        if low is not None:
            queryset = queryset.filter(latency_ms__gte=low)
        if high is not None:
            queryset = queryset.filter(latency_ms__lt=high)
        return queryset


@admin.register(QueryLog)
class QueryLogAdmin(RecordAdmin):
    list_display = ["id", "created_at", "user", "collection", "short_query", "response_mode", "generator",
                    "served_by", "outcome", "latency_ms"]
    list_filter = ["outcome", "generator", "served_by", LatencyFilter, "response_mode", "search_mode"]
    list_select_related = ["user", "collection"]
    search_fields = ["query", "task_id"]
    date_hierarchy = "created_at"

    @admin.display(description="query")
    def short_query(self, obj: QueryLog) -> str:
        return obj.query[:80]
