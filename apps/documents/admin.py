"""Admin for collections, documents (status, errors, retry/reindex) and read-only chunks."""
from django.contrib import admin, messages

from .models import Chunk, Collection, Document
from .services.ingestion import document_reindex


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "embedding_model", "content_version", "updated_at"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["embedding_model", "embedding_dim", "content_version", "created_at", "updated_at"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "collection", "status", "chunk_count", "version", "updated_at"]
    list_filter = ["status", "format"]
    search_fields = ["title", "source", "content_hash"]
    readonly_fields = [
        "content_hash", "size_bytes", "format", "status", "error", "version", "chunk_count",
        "chunks_total", "chunks_embedded", "attempts", "created_at", "updated_at", "ready_at",
    ]
    actions = ["reindex"]

    @admin.action(description="Retry / reindex the selected documents")
    def reindex(self, request, queryset):
        for document in queryset:
            document_reindex(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued for reindexing", messages.SUCCESS)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["id", "document", "ordinal", "token_count"]
    search_fields = ["text"]
    exclude = ["embedding"]
    readonly_fields = ["document", "collection", "ordinal", "text", "token_count", "metadata", "document_metadata"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
