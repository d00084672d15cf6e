"""Worker heartbeats in Redis: how the health endpoint counts live workers per queue.

A worker writes ``sluice:worker:<queue>:<hostname>`` with a short TTL every few seconds
and deletes it on a clean shutdown, so a killed worker disappears within the TTL. This
is cheaper and more predictable than a broadcast ``inspect().ping()`` on every request.
"""
import logging
import socket

from celery import bootsteps
from django.conf import settings

from .state import state_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice:worker"


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

    def start(self, consumer) -> None:
        hostname = consumer.hostname or socket.gethostname()
        queues = sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
        self.keys = [heartbeat_key(queue=q, hostname=hostname) for q in queues]
        self._beat()
        self.tref = consumer.timer.call_repeatedly(settings.SLUICE_WORKER_HEARTBEAT_INTERVAL, self._beat)
        logger.info("worker %s beats for queues %s", hostname, ", ".join(queues))

    def stop(self, consumer) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.keys:
            try:
                state_redis().delete(*self.keys)
            except Exception:  # Redis may already be gone when the whole stack stops.
                logger.warning("could not remove heartbeat keys %s", self.keys)

    def _beat(self) -> None:
        try:
            pipe = state_redis().pipeline()
            for key in self.keys:
                pipe.set(key, "1", ex=settings.SLUICE_WORKER_HEARTBEAT_TTL)
            pipe.execute()
        except Exception as exc:  # A missed beat must never kill the worker.
            logger.warning("worker heartbeat failed: %s", exc)
