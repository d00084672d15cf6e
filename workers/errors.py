"""Errors that mean a part Sluice needs is down or restarting, not that the work is wrong:
the web tier answers them with 503 + Retry-After (apps/operations/api/errors.py), tasks
retry them with backoff (apps/documents/tasks.py). One classification for both."""
import psycopg
import redis
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError

# A lost or refused database connection (Django wraps psycopg's; raw ones can escape it).
DATABASE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# Redis (broker, results, caches, state) or the broker connection unreachable.
REDIS_ERRORS = (redis.RedisError, BrokerOperationalError, ConnectionError)
TRANSIENT_ERRORS = DATABASE_ERRORS + REDIS_ERRORS
