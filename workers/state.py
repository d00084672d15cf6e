"""The Redis connection for small shared state (heartbeats, overload counters)."""
import functools

import redis
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
