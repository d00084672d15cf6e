"""The Redis connection for small shared state (heartbeats, overload counters)."""
import functools

import redis
import redis.asyncio as aioredis
from django.conf import settings


@functools.cache
def state_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.SLUICE_STATE_REDIS_URL, socket_timeout=2, socket_connect_timeout=2
    )


@functools.cache
def broker_redis() -> redis.Redis:
    """The broker's database, read directly for queue depths."""
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
    )


# Connections for the async web views' plain commands (GET, XREAD ...); a blocked XREAD
# holds one while it waits, so the pool must be as large as the concurrent streams.
ASYNC_MAX_CONNECTIONS = 4096


@functools.cache
def async_redis(url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``url``, one per process (for the async web views)."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=2, max_connections=ASYNC_MAX_CONNECTIONS)


@functools.cache
def cache_redis() -> redis.Redis:
    """The cache database (answer caches, embedding cache)."""
    return redis.Redis.from_url(
        settings.CACHES["default"]["LOCATION"], socket_timeout=2, socket_connect_timeout=2
    )
