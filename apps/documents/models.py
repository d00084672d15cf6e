"""Collections, documents, their raw content, and the embedded chunks retrieval searches."""
from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIM = 384


class Collection(models.Model):
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    description = models.TextField(blank=True, default="")
    embedding_model = models.CharField(
        max_length=200, help_text="the model (and quantisation) of the collection's vectors; ingestion and search "
                                  "need the configured encoder to produce the same (docs/ingestion.md, Encoders)")
    embedding_dim = models.PositiveIntegerField(default=EMBEDDING_DIM)
    # Bumped on every change to the collection's documents; answer caches key on it.
    content_version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="collection_owner_name_unique")]

    def __str__(self) -> str:
        return self.name


class CollectionShare(models.Model):
    """Access to a collection for a user or a group (exactly one of them): ``read`` lets
    them search, query and list it; ``write`` also upload, update, reindex and delete its
    documents. Only the owner renames or deletes the collection and changes its shares."""

    class Access(models.TextChoices):
        READ = "read"
        WRITE = "write"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    access = models.CharField(max_length=5, choices=Access.choices, default=Access.READ)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, group__isnull=True) | models.Q(user__isnull=True, group__isnull=False),
                name="share_user_xor_group",
            ),
            models.UniqueConstraint(fields=["collection", "user"], name="share_collection_user_unique"),
            models.UniqueConstraint(fields=["collection", "group"], name="share_collection_group_unique"),
        ]
        indexes = [models.Index(fields=["user", "collection"]), models.Index(fields=["group", "collection"])]

    def __str__(self) -> str:
        return f"{self.collection} → {self.user or self.group} ({self.access})"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PARSING = "parsing"
        EMBEDDING = "embedding"
        READY = "ready"
        FAILED = "failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500)
    source = models.CharField(max_length=500, blank=True, default="", help_text="file name or origin")
    format = models.CharField(max_length=20)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the raw content")
    size_bytes = models.PositiveBigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True, default="")
    # Bumped by update/reindex; a task for an older version stops without writing.
    version = models.PositiveIntegerField(default=1)
    chunk_count = models.PositiveIntegerField(default=0, help_text="chunks of the ready version")
    chunks_total = models.PositiveIntegerField(default=0, help_text="chunks of the version being ingested")
    chunks_embedded = models.PositiveIntegerField(default=0)
    # Deliveries of the current ingestion step that did not finish (worker died); capped.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    embedded_by = models.CharField(
        max_length=200, blank=True, default="",
        help_text="the encoder (runtime, quantisation, precision) that produced the ready version's vectors")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "content_hash"], name="document_collection_hash_unique")
        ]
        indexes = [models.Index(fields=["collection", "status"])]

    def __str__(self) -> str:
        return self.title

    @property
    def progress(self) -> float:
        if self.status == self.Status.READY:
            return 1.0
        return round(self.chunks_embedded / self.chunks_total, 4) if self.chunks_total else 0.0


class DocumentContent(models.Model):
    """The raw upload, kept so a document can be re-parsed, reindexed or retried."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, primary_key=True, related_name="content")
    data = models.BinaryField()
    content_type = models.CharField(max_length=200, blank=True, default="")
    # The chunk plan of the version being ingested (JSON list), so continuation steps
    # neither re-parse nor re-chunk.
    plan = models.JSONField(null=True, blank=True)
    plan_version = models.PositiveIntegerField(default=0)


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised so retrieval filters by collection without a join.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIM)
    # heading_path, char_start, char_end (offsets into the parsed text), version.
    metadata = models.JSONField(default=dict, blank=True)
    # A copy of the document's metadata, so retrieval filters inside the SQL without a join.
    document_metadata = models.JSONField(default=dict, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_document_ordinal_unique")]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="chunk_search_vector_gin", fields=["search_vector"]),
            GinIndex(name="chunk_document_metadata_gin", fields=["document_metadata"], opclasses=["jsonb_path_ops"]),
            models.Index(fields=["collection", "document"], name="chunk_collection_document"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"
