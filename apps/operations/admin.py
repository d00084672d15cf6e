"""Admin: the overload policy, editable at runtime (docs/overload.md)."""
from django.contrib import admin

from .models import OverloadPolicy
from .overload.policy import overload_policy


@admin.register(OverloadPolicy)
class OverloadPolicyAdmin(admin.ModelAdmin):
    fieldsets = [
        ("Admission control", {"fields": ["shedding_enabled", "max_wait_critical", "max_wait_interactive",
                                          "max_wait_batch"],
                               "description": "A class is admitted to a stage (retrieve, generate) while the "
                                              "estimated queue wait there stays under its limit (seconds)."}),
        ("Deadlines (seconds, sync and streaming requests)", {"fields": ["deadline_critical", "deadline_interactive",
                                                                         "deadline_batch"]}),
        ("Generation backpressure", {"fields": ["generation_max_concurrency", "batch_generation_share",
                                                "breaker_failures", "breaker_open_seconds"]}),
        ("Answer caches", {"fields": ["exact_cache_enabled", "semantic_cache_enabled", "semantic_cache_threshold",
                                      "stale_cache_enabled"]}),
    ]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request):
        return not OverloadPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        overload_policy()  # the row exists (created from the settings) before it is listed
        return super().changelist_view(request, extra_context)
