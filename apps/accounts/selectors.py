"""Reads for API keys: finding the key a request presents."""
import hmac
from datetime import timedelta

from django.utils import timezone

from .models import ApiKey
from .services import PREFIX_LENGTH, api_key_hash

# last_used_at is written at most this often per key (a write per request would cost more
# than the lookup itself).
LAST_USED_RESOLUTION = timedelta(seconds=60)


def api_key_lookup(*, raw_key: str) -> ApiKey | None:
    """The active key ``raw_key`` names, with its user; None when unknown, revoked or the
    user is inactive. Reads the primary, so a revocation takes effect at once."""
    if len(raw_key) <= PREFIX_LENGTH:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=raw_key[:PREFIX_LENGTH]).first()
    if key is None or not hmac.compare_digest(key.hashed_key, api_key_hash(raw_key)):
        return None
    if not key.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
