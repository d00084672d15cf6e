"""Wires the queue declarations, routing and worker bootsteps into the Celery app."""
from celery import Celery
from django.conf import settings
from kombu import Queue as KombuQueue

from . import deadlines, load, recovery, signals, startup  # noqa: F401  (connect their signal handlers)
from .heartbeat import WorkerHeartbeat
from .periodic import PeriodicJobs, periodic_register
from .queues import PRIORITY_SEP, PRIORITY_STEPS, Priority, Queue


def configure_app(app: Celery) -> None:
    app.conf.task_queues = [KombuQueue(q.value, routing_key=q.value) for q in Queue]
    # Tasks name their queue explicitly (see workers.tasks.task); anything that does not
    # goes to `retrieve`, the cheapest pool, rather than to an undeclared `celery` queue.
    app.conf.task_default_queue = Queue.RETRIEVE.value
    app.conf.task_default_priority = int(Priority.DEFAULT)
    app.conf.task_create_missing_queues = False
    app.conf.broker_transport_options = {
        "priority_steps": PRIORITY_STEPS,
        "sep": PRIORITY_SEP,
        "queue_order_strategy": "priority",
        "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": settings.SLUICE_UNACKED_RESTORE_INTERVAL,
        "unacked_restore_throttle": settings.SLUICE_UNACKED_RESTORE_THROTTLE,
    }
    app.conf.result_backend_transport_options = {"retry_policy": {"timeout": 5.0}}
    app.steps["consumer"].add(WorkerHeartbeat)
    app.steps["consumer"].add(PeriodicJobs)
    # A dead worker's unacknowledged messages go back on their queues within about
    # SLUICE_WORKER_HEARTBEAT_TTL + this interval, not after the visibility timeout.
    periodic_register(name="requeue-dead-workers", run=recovery.dead_workers_requeue,
                      interval=lambda: settings.SLUICE_REQUEUE_INTERVAL)
