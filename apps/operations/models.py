"""The overload policy: admission thresholds, deadlines, caches and breaker settings that
operators change at runtime from the admin (one row; see docs/overload.md)."""
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class OverloadPolicy(models.Model):
    """The single row (pk 1) every web process and worker reads, cached for
    ``SLUICE_OVERLOAD_POLICY_TTL`` seconds. Created from ``SLUICE_OVERLOAD_DEFAULTS`` (the
    ``SLUICE_*`` environment variables of ragproject/settings/overload.py) on first use;
    edits in the admin take effect within that TTL, without a restart. The field defaults
    below are those settings' own defaults."""

    shedding_enabled = models.BooleanField(
        default=True,
        help_text="Admission control on: requests whose estimated wait exceeds their class's limit are "
                  "served from cache, degraded, or rejected with 503 + Retry-After. Off: everything is queued.",
    )
    # Estimated queue wait (seconds) a class may be admitted with, per stage.
    max_wait_critical = models.FloatField(default=15.0, validators=[MinValueValidator(0)])
    max_wait_interactive = models.FloatField(default=2.0, validators=[MinValueValidator(0)])
    max_wait_batch = models.FloatField(default=1.0, validators=[MinValueValidator(0)])
    # Default deadlines (seconds) of sync/stream requests per class; a request may ask for less.
    deadline_critical = models.FloatField(default=30.0, validators=[MinValueValidator(0.5)])
    deadline_interactive = models.FloatField(default=15.0, validators=[MinValueValidator(0.5)])
    deadline_batch = models.FloatField(default=30.0, validators=[MinValueValidator(0.5)])
    batch_generation_share = models.FloatField(
        default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Share of the generation server's concurrent slots batch requests may hold; the rest is "
                  "reserved for critical and interactive ones.",
    )
    generation_max_concurrency = models.PositiveIntegerField(
        default=0,
        help_text="Concurrent requests Sluice sends to the generation server; 0 = its own "
                  "max_concurrent_requests from /info.",
    )
    exact_cache_enabled = models.BooleanField(default=True)
    semantic_cache_enabled = models.BooleanField(default=True)
    semantic_cache_threshold = models.FloatField(
        default=0.95, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Cosine similarity an earlier question must reach to serve its answer.",
    )
    stale_cache_enabled = models.BooleanField(
        default=True,
        help_text="Under pressure, serve an answer cached for an older version of the collection (marked stale).",
    )
    breaker_failures = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)],
        help_text="Consecutive generation failures (429, 5xx, timeouts) that open the circuit breaker.",
    )
    breaker_open_seconds = models.FloatField(
        default=10.0, validators=[MinValueValidator(0.1)],
        help_text="How long the breaker stays open before one half-open probe is let through.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "overload policy"
        verbose_name_plural = "overload policy"
        # The queue page's repairs (apps/operations/admin_site.py); viewing it needs only staff.
        permissions = [("manage_queues", "Can purge queues, requeue stuck work and retry or discard dead letters")]

    def __str__(self) -> str:
        return "Overload policy"

    def save(self, *args, **kwargs):
        self.pk = 1  # one row
        super().save(*args, **kwargs)
