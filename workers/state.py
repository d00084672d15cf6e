"""Redis connections: the broker Redis's databases (broker, state) and the cache Redis
(ragproject/settings/caches.py says which holds what)."""
import functools
import time

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


# After a failed connect to the cache Redis, calls fail at once for this many seconds
# instead of each waiting for a connect timeout (an unreachable cache host would
# otherwise add seconds to every request that looks something up).
CACHE_RETRY_AFTER = 5.0


class _CachePool(redis.ConnectionPool):
    down_until = 0.0

    def get_connection(self, *args, **kwargs):
        if time.monotonic() < self.down_until:
            raise redis.ConnectionError("the cache Redis could not be reached moments ago; skipping it")
        try:
            return super().get_connection(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError):
            self.down_until = time.monotonic() + CACHE_RETRY_AFTER
            raise


@functools.cache
def cache_redis() -> redis.Redis:
    """The cache Redis (answer and embedding caches): evictable, and optional: callers
    treat its errors as misses."""
    return redis.Redis(connection_pool=_CachePool.from_url(
        settings.REDIS_CACHE_URL, socket_timeout=2, socket_connect_timeout=2))
