"""Worker heartbeats in Redis: how the health endpoint counts live workers per queue.

A worker writes ``sluice:worker:<queue>:<hostname>`` with a short TTL every few seconds
and deletes it on a clean shutdown, so a killed worker disappears within the TTL. This
is cheaper and more predictable than a broadcast ``inspect().ping()`` on every request.

For admission control (workers/load.py) each beat also records the worker's concurrency
in ``sluice:capacity:<queue>`` (a sorted set of hostnames scored by when the beat expires)
and ``sluice:concurrency:<queue>`` (hostname -> concurrency), readable without KEYS.
"""
import time
import logging
import socket

from celery import bootsteps
from django.conf import settings

from .recovery import inflight_prune, instance_beat, instance_stopped
from .state import state_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice:worker"
CAPACITY_KEY = "sluice:capacity:{queue}"
CONCURRENCY_KEY = "sluice:concurrency:{queue}"
# Drop the concurrency entries of hostnames no longer in the live capacity set.
_CONCURRENCY_PRUNE = """
local live = {}
for _, host in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do live[host] = true end
for _, host in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not live[host] then redis.call('HDEL', KEYS[2], host) end
end
return 1
"""


def heartbeat_key(*, queue: str, hostname: str) -> str:
    return f"{KEY_PREFIX}:{queue}:{hostname}"


def live_workers(*, queue: str) -> list[str]:
    """Hostnames of the workers that consume ``queue`` and beat recently."""
    keys = state_redis().keys(f"{KEY_PREFIX}:{queue}:*")
    return sorted(k.decode().split(":", 3)[3] for k in keys)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A consumer step: it beats only once the worker consumes its queues, and stops
    beating while the consumer is down (lost broker connection, shutdown)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.tref = None
        self.keys: list[str] = []
        self.queues: list[str] = []
        self.hostname = ""
        self.concurrency = 1

    def start(self, consumer) -> None:
        hostname = consumer.hostname or socket.gethostname()
        queues = sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
        self.keys = [heartbeat_key(queue=q, hostname=hostname) for q in queues]
        self.queues, self.hostname = queues, hostname
        self.concurrency = int(getattr(consumer.controller, "concurrency", None) or consumer.app.conf.worker_concurrency or 1)
        self._beat()
        self.tref = consumer.timer.call_repeatedly(settings.SLUICE_WORKER_HEARTBEAT_INTERVAL, self._beat)
        logger.info("worker %s beats for queues %s", hostname, ", ".join(queues))

    def stop(self, consumer) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.keys:
            try:
                pipe = state_redis().pipeline(transaction=False)
                pipe.delete(*self.keys)
                for queue in self.queues:
                    pipe.zrem(CAPACITY_KEY.format(queue=queue), self.hostname)
                    pipe.hdel(CONCURRENCY_KEY.format(queue=queue), self.hostname)
                instance_stopped(pipe=pipe)
                pipe.execute()
            except Exception:  # Redis may already be gone when the whole stack stops.
                logger.warning("could not remove heartbeat keys %s", self.keys)

    def _beat(self) -> None:
        try:
            pipe = state_redis().pipeline()
            ttl = settings.SLUICE_WORKER_HEARTBEAT_TTL
            for key in self.keys:
                pipe.set(key, "1", ex=ttl)
            now = time.time()
            for queue in self.queues:
                # Entries of workers that died without saying so expire here (pods come and go).
                pipe.zremrangebyscore(CAPACITY_KEY.format(queue=queue), "-inf", now)
                pipe.zadd(CAPACITY_KEY.format(queue=queue), {self.hostname: now + ttl})
                pipe.hset(CONCURRENCY_KEY.format(queue=queue), self.hostname, self.concurrency)
                # ... and their concurrency entries with them, so the hash stays bounded.
                pipe.eval(_CONCURRENCY_PRUNE, 2, CAPACITY_KEY.format(queue=queue), CONCURRENCY_KEY.format(queue=queue))
            instance_beat(pipe=pipe, hostname=self.hostname, queues=self.queues, ttl=ttl)
            pipe.execute()
            inflight_prune()
        except Exception as exc:  # A missed beat must never kill the worker.
            logger.warning("worker heartbeat failed: %s", exc)
