"""The query path's rows: the query log (one row per query, for the admin, for analysis,
and to authorise reads of asynchronous results: a task's result is shown only to the
user who asked) and the semantic answer cache.

Both tables predate this app (they were ``retrieval``'s): the migrations moved only
Django's state, the tables keep their names (``db_table``)."""
from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField


class QueryLog(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"  # queued or running
        OK = "ok"
        DEGRADED = "degraded"  # answered, but from a fallback (extractive, stale cache)
        FAILED = "failed"
        TIMEOUT = "timeout"  # the client stopped waiting: the web tier gave up on it
        CANCELLED = "cancelled"  # the client went away (a closed stream)
        REJECTED = "rejected"  # shed by admission control (503 + Retry-After)
        EXPIRED = "expired"  # dropped by a worker: its deadline passed before the work ran

    class ResponseMode(models.TextChoices):
        SYNC = "sync"
        ASYNC = "async"
        STREAM = "stream"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    collection = models.ForeignKey("documents.Collection", on_delete=models.SET_NULL, null=True, related_name="+")
    query = models.TextField()
    response_mode = models.CharField(max_length=10, choices=ResponseMode.choices)
    search_mode = models.CharField(max_length=10)
    top_k = models.PositiveSmallIntegerField()
    filters = models.JSONField(default=dict, blank=True)
    # Celery ids of the chain (embed, search, answer); the last one carries the answer.
    task_ids = models.JSONField(default=list, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    priority = models.CharField(max_length=12, blank=True, default="", help_text="request class")
    deadline_s = models.FloatField(null=True, blank=True, help_text="seconds the client gave the request")
    generator = models.CharField(max_length=20, blank=True, default="")
    served_by = models.CharField(
        max_length=20, blank=True, default="",
        help_text="which rung produced the answer: generation, extractive, exact_cache, semantic_cache, stale_cache",
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    error = models.TextField(blank=True, default="")
    timings = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "retrieval_querylog"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.pk}: {self.query[:60]}"


class SemanticCacheEntry(models.Model):
    """A past answer, found again by the meaning of its question (apps/query/caches.py).

    Scoped like the exact cache: one collection, one set of retrieval/generation parameters
    (``params_digest``), and the collection's ``content_version`` at the time, so a changed
    document makes the entry stale (served only as the marked "stale" rung under pressure)."""

    collection = models.ForeignKey("documents.Collection", on_delete=models.CASCADE, related_name="+")
    content_version = models.PositiveBigIntegerField()
    params_digest = models.CharField(max_length=64)
    question = models.TextField()
    embedding = VectorField(dimensions=384)
    body = models.JSONField()
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "retrieval_semanticcacheentry"
        indexes = [
            models.Index(fields=["collection", "params_digest"], name="semcache_scope_idx"),
            HnswIndex(name="semcache_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.collection_id}: {self.question[:60]}"
