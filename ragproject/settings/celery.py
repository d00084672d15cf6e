"""Celery on Redis: broker, results, priorities, delivery guarantees.

https://docs.celeryq.dev/en/stable/userguide/configuration.html
https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html
Queues, their priorities and routing are declared once in ``workers/queues.py``.
"""
from .caches import redis_db_url
from .env import env

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=redis_db_url(0))
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=redis_db_url(1))
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=3600)

# A task is acknowledged only after it ran, and a worker that dies mid-task gives it
# back, so nothing is lost when a worker is killed; prefetch 1 keeps queued work in
# Redis (visible, and stealable by other workers) rather than buffered in one worker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers unacknowledged messages after this many seconds; it must be longer
# than the longest task, or a slow task is run twice.
# Sluice's tasks are short steps (ingestion yields every SLUICE_INGEST_STEP_CHUNKS chunks).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=600)
# How often workers sweep for messages whose worker died (kombu's unacked_restore_interval
# x unacked_restore_throttle seconds), so a `kill -9`'d task is redelivered.
SLUICE_UNACKED_RESTORE_INTERVAL = env.int("SLUICE_UNACKED_RESTORE_INTERVAL", default=10)
SLUICE_UNACKED_RESTORE_THROTTLE = env.int("SLUICE_UNACKED_RESTORE_THROTTLE", default=6)

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# STARTED is recorded for tasks whose state someone reads (the answer task of an async
# query); the steps of the interactive chain opt out (each state write is a Redis round trip).
CELERY_TASK_TRACK_STARTED = True
# Task events feed Flower's task views. A publisher's "task-sent" event costs every enqueue
# an extra Redis publish, so it is off; workers send received/started/succeeded events
# per queue (SLUICE_WORKER_TASK_EVENTS below).
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; then only every 2 x N tasks. Reconnecting (TCP + a forked Postgres backend)
# cost milliseconds per query-path task; Django's CONN_HEALTH_CHECKS replaces a broken one.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=500)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Per-queue worker concurrency for the stack's worker pools (workers/pools.py).
SLUICE_WORKER_CONCURRENCY = {
    "embed": env.int("SLUICE_WORKER_CONCURRENCY_EMBED", default=1),
    "retrieve": env.int("SLUICE_WORKER_CONCURRENCY_RETRIEVE", default=2),
    "generate": env.int("SLUICE_WORKER_CONCURRENCY_GENERATE", default=4),
    "generate_batch": env.int("SLUICE_WORKER_CONCURRENCY_GENERATE_BATCH", default=2),
}
# Which pools send task events (Flower's task list and timelines). Off by default on the
# interactive retrieve pool, where the three event publishes per task are a third of a
# queue hop's cost (docs/benchmarks.md: query overhead); Flower still shows those workers, their
# active tasks and the queue depths. Turn on while debugging.
SLUICE_WORKER_TASK_EVENTS = {
    "embed": env.bool("SLUICE_WORKER_TASK_EVENTS_EMBED", default=True),
    "retrieve": env.bool("SLUICE_WORKER_TASK_EVENTS_RETRIEVE", default=False),
    "generate": env.bool("SLUICE_WORKER_TASK_EVENTS_GENERATE", default=True),
    "generate_batch": env.bool("SLUICE_WORKER_TASK_EVENTS_GENERATE_BATCH", default=True),
}
# Seconds between worker heartbeats in Redis, and how long one stays valid.
SLUICE_WORKER_HEARTBEAT_INTERVAL = env.float("SLUICE_WORKER_HEARTBEAT_INTERVAL", default=2.0)
SLUICE_WORKER_HEARTBEAT_TTL = env.int("SLUICE_WORKER_HEARTBEAT_TTL", default=10)
# A worker whose heartbeat is gone has its unacknowledged messages put back on their queues
# by whichever worker checks next (every this many seconds), and a message whose worker died
# this many times while running it goes to the dead-letter list (docs/queues.md).
SLUICE_REQUEUE_INTERVAL = env.float("SLUICE_REQUEUE_INTERVAL", default=5.0)
SLUICE_TASK_MAX_DEATHS = env.int("SLUICE_TASK_MAX_DEATHS", default=3)
# Fault points (workers/faults.py) can be armed: the test stack's fault drills. Never in production.
SLUICE_FAULT_INJECTION = env.bool("SLUICE_FAULT_INJECTION", default=False)
