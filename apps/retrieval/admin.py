"""Admin for the query log (read-only): filter by outcome, generator, served_by, mode."""
from django.contrib import admin

from .models import QueryLog


@admin.register(QueryLog)
class QueryLogAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "user", "collection", "short_query", "response_mode", "generator",
                    "served_by", "outcome", "latency_ms"]
    list_filter = ["outcome", "generator", "served_by", "response_mode", "search_mode"]
    search_fields = ["query", "task_id"]
    date_hierarchy = "created_at"

    @admin.display(description="query")
    def short_query(self, obj: QueryLog) -> str:
        return obj.query[:80]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
