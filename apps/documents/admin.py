"""Admin for collections (with their shares), documents (status, ingestion progress,
error, chunk count; stuck and dead-lettered ones; retry, reindex and delete through the
services) and read-only, searchable chunks."""
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from apps.operations.admin_records import RecordAdmin

from .models import Chunk, Collection, CollectionShare, Document
from .services.ingestion import DEAD_LETTERED_PREFIX, document_delete, document_reindex, documents_stuck


class IngestionHealthFilter(admin.SimpleListFilter):
    """Documents that need an operator: stuck (not final, no progress for
    SLUICE_INGEST_STUCK_AFTER seconds; the reconciler re-enqueues them by itself) or
    dead-lettered (their step killed its worker every time; docs/ingestion.md)."""

    title = "ingestion health"
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("stuck", f"stuck (no progress for {settings.SLUICE_INGEST_STUCK_AFTER:.0f}s)"),
                ("dead_lettered", "dead-lettered")]

    def queryset(self, request, queryset):
        if self.value() == "stuck":
            return queryset.filter(pk__in=documents_stuck(stuck_after=settings.SLUICE_INGEST_STUCK_AFTER,
                                                          limit=10_000).values("pk"))
        if self.value() == "dead_lettered":
            return queryset.filter(status=Document.Status.FAILED, error__startswith=DEAD_LETTERED_PREFIX)
        return queryset


class CollectionShareInline(admin.TabularInline):
    model = CollectionShare
    extra = 0
    autocomplete_fields = ["user", "group"]
    fields = ["user", "group", "access", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "documents", "embedding_model", "content_version", "updated_at"]
    search_fields = ["name", "owner__username"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    readonly_fields = ["embedding_model", "embedding_dim", "content_version", "created_at", "updated_at"]
    inlines = [CollectionShareInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(document_total=Count("documents"))

    @admin.display(description="documents", ordering="document_total")
    def documents(self, obj: Collection) -> int:
        return obj.document_total


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "collection", "status", "ingestion_progress", "short_error", "chunk_count",
                    "version", "updated_at"]
    list_filter = [IngestionHealthFilter, "status", "format"]
    list_select_related = ["collection"]
    search_fields = ["title", "source", "content_hash"]
    readonly_fields = [
        "collection", "content_hash", "size_bytes", "format", "status", "error", "version", "chunk_count",
        "chunks_total", "chunks_embedded", "attempts", "created_at", "updated_at", "ready_at",
    ]
    actions = ["retry_failed", "reindex", "delete_with_chunks"]

    def has_add_permission(self, request):
        return False  # documents come in through the API or `manage.py ingest`

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would bypass document_delete
        return actions

    @admin.display(description="progress")
    def ingestion_progress(self, obj: Document) -> str:
        """A bar for a document being ingested: chunks embedded of the version's chunks (the
        API's ``progress``), or an indeterminate bar while it waits or is parsed (its chunk
        count is not known yet). Nothing once it is final: the status says ready or failed."""
        if obj.status in (Document.Status.READY, Document.Status.FAILED):
            return "–"
        label = f"{obj.title[:80]}: {obj.get_status_display().lower()}"
        if not obj.chunks_total:
            return format_html('<span style="white-space: nowrap"><progress class="ingest-progress" data-document="{}" '
                               'aria-label="{}" style="width: 6em; vertical-align: middle"></progress> {}</span>',
                               obj.pk, label, obj.get_status_display().lower())
        percent = round(obj.progress * 100)
        return format_html('<span style="white-space: nowrap"><progress class="ingest-progress" data-document="{}" '
                           'value="{}" max="{}" aria-label="{}, {}% of its chunks embedded" '
                           'style="width: 6em; vertical-align: middle">{}%</progress> {} / {} chunks ({}%)</span>',
                           obj.pk, obj.chunks_embedded, obj.chunks_total, label, percent, percent,
                           obj.chunks_embedded, obj.chunks_total, percent)

    @admin.display(description="error")
    def short_error(self, obj: Document) -> str:
        return obj.error[:120]

    @admin.action(description="Retry the selected failed, stuck or dead-lettered documents", permissions=["change"])
    def retry_failed(self, request, queryset):
        stuck = documents_stuck(stuck_after=settings.SLUICE_INGEST_STUCK_AFTER, limit=10_000).values("pk")
        retried = list(queryset.filter(status=Document.Status.FAILED) | queryset.filter(pk__in=stuck))
        for document in retried:
            document_reindex(document=document)
        skipped = queryset.count() - len(retried)
        self.message_user(request, f"{len(retried)} failed or stuck document(s) queued again"
                          + (f"; {skipped} neither, left alone" if skipped else ""), messages.SUCCESS)

    @admin.action(description="Reindex the selected documents (re-parse, re-chunk, re-embed)", permissions=["change"])
    def reindex(self, request, queryset):
        for document in queryset:
            document_reindex(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued for reindexing", messages.SUCCESS)

    @admin.action(description="Delete the selected documents and their chunks", permissions=["delete"])
    def delete_with_chunks(self, request, queryset):
        count = 0
        for document in queryset:
            document_delete(document=document)
            count += 1
        self.message_user(request, f"{count} document(s) deleted", messages.SUCCESS)

    def delete_model(self, request, obj):
        document_delete(document=obj)


@admin.register(Chunk)
class ChunkAdmin(RecordAdmin):
    list_display = ["id", "document", "collection", "ordinal", "token_count", "short_text"]
    list_select_related = ["document", "collection"]
    search_fields = ["text", "document__title"]
    list_filter = [("collection", admin.RelatedOnlyFieldListFilter)]
    show_full_result_count = False  # no COUNT(*) over every chunk on each page
    exclude = ["embedding"]
    readonly_fields = ["document", "collection", "ordinal", "text", "token_count", "metadata", "document_metadata"]

    @admin.display(description="text")
    def short_text(self, obj: Chunk) -> str:
        return obj.text[:100]

    def has_delete_permission(self, request, obj=None):
        return False  # chunks follow their document: delete or reindex that
