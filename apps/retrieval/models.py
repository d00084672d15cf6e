"""The query log: one row per query, for the admin, for analysis, and to authorise reads
of asynchronous results (a task's result is shown only to the user who asked)."""
from django.conf import settings
from django.db import models


class QueryLog(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending"
        OK = "ok"
        DEGRADED = "degraded"
        FAILED = "failed"
        TIMEOUT = "timeout"
        CANCELLED = "cancelled"

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
    generator = models.CharField(max_length=20, blank=True, default="")
    served_by = models.CharField(max_length=20, blank=True, default="", help_text="which path produced the answer")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    error = models.TextField(blank=True, default="")
    timings = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.pk}: {self.query[:60]}"
