"""Writes for API keys: create (the key is returned once, never stored) and revoke."""
import hashlib
import logging
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.throttling import SimpleRateThrottle

from workers.queues import PriorityClass

from .models import ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice_"
# The stored lookup prefix: "sluice_" and the first 8 random characters (48 bits).
PREFIX_LENGTH = len(KEY_PREFIX) + 8


class InvalidRate(ValueError):
    pass


def api_key_hash(raw_key: str) -> str:
    # A fast hash is right here: the key has 256 random bits, so nothing can be guessed
    # offline from the hash, and every request pays for it.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def rate_validate(rate: str) -> str:
    """``rate`` (``N/period``, period s, min, hour or day) or a clear error."""
    if not rate:
        return ""
    try:
        num, duration = SimpleRateThrottle.parse_rate(None, rate)
        if num < 1 or duration is None:
            raise ValueError
    except (ValueError, KeyError, IndexError):
        raise InvalidRate(f"rate {rate!r} is not N/period, e.g. 30/min, 1000/hour, 5/s") from None
    return rate


def api_key_create(*, user, name: str = "", priority: str = PriorityClass.INTERACTIVE,
                   rate: str = "") -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the key itself, which is not kept
    anywhere and cannot be shown again."""
    if priority not in PriorityClass.values:
        raise ValueError(f"priority {priority!r} is not one of {', '.join(PriorityClass.values)}")
    rate = rate_validate(rate)
    for _ in range(5):
        raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    user=user, name=name, priority=priority, rate=rate,
                    prefix=raw_key[:PREFIX_LENGTH], hashed_key=api_key_hash(raw_key),
                )
        except IntegrityError:  # a prefix collision (1 in 2^48): draw again
            continue
        logger.info("API key %s created for user %s (priority %s)", key.prefix, user, priority)
        return key, raw_key
    raise RuntimeError("could not draw a unique API key prefix")


def api_key_revoke(*, api_key: ApiKey) -> None:
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        logger.info("API key %s of user %s revoked", api_key.prefix, api_key.user_id)
