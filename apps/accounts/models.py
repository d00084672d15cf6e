"""API keys: how programs authenticate to the REST API (docs/access.md).

A key is shown once, when it is created; only its SHA-256 is stored, with a short
``prefix`` (the key's first characters) to find the row without scanning. Revoking sets
``revoked_at``; a revoked key fails authentication at once (every lookup reads the primary).
"""
from django.conf import settings
from django.db import models

from workers.queues import PriorityClass


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="", help_text="what the key is for")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="the key's first characters")
    hashed_key = models.CharField(max_length=64, editable=False, help_text="sha256 of the key; the key is never stored")
    priority = models.CharField(max_length=12, choices=PriorityClass.choices, default=PriorityClass.INTERACTIVE)
    rate = models.CharField(
        max_length=20, blank=True, default="",
        help_text="requests allowed per period for this key, e.g. 30/min; empty: SLUICE_THROTTLE_RATE_API",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"
        # `add_apikey` alone creates keys for oneself only (apps/accounts/admin.py).
        permissions = [("add_key_for_others", "Can add API keys for other users")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.user.is_active
