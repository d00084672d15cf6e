"""A base admin for the records only the system writes."""
from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """A model admin for records that only the system writes (chunks, the query log): they
    can be looked at, never added or edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
