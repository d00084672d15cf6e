"""Generic Celery signal handlers: a publish timestamp on every message, and task latency,
outcome and time spent queued, per queue, for /metrics. No domain code
(docs/operations.md lists the metrics)."""
import time

from celery import signals

from apps.operations.metrics import histogram, metrics_observe

# Set on every published message; the admin's queue page reads it to show how long the
# oldest waiting message has waited, and workers to measure time spent queued.
SENT_AT_HEADER = "sluice_sent_at"

TASK_SECONDS = histogram("sluice_task_duration_seconds", "Time a task ran on its worker, by queue, task and outcome",
                         labels=["queue", "task", "outcome"])
TASK_WAIT_SECONDS = histogram("sluice_task_queue_wait_seconds",
                              "Time from publishing a task to a worker starting it (queue wait, ETA included)",
                              labels=["queue", "task"])

_started: dict[str, float] = {}  # task id -> perf_counter at prerun (thread pools: dict ops are atomic)


@signals.before_task_publish.connect
def _stamp_sent_at(headers=None, **kwargs) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    # After the result is stored: the recording costs the waiting client nothing.
    started = _started.pop(task_id, None)
    if started is None or task is None:
        return
    request = task.request
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or "unknown"
    observations = [(TASK_SECONDS, time.perf_counter() - started,
                     {"queue": queue, "task": task.name, "outcome": (state or "unknown").lower()})]
    sent_at = getattr(request, SENT_AT_HEADER, None)
    if sent_at:
        waited = max(0.0, time.time() - float(sent_at) - (time.perf_counter() - started))
        observations.append((TASK_WAIT_SECONDS, waited, {"queue": queue, "task": task.name}))
    metrics_observe(observations)


@signals.task_prerun.connect
def _database_connections_checked(**kwargs) -> None:
    """Django's request-start rule for the worker's connections (CELERY_DB_REUSE_MAX keeps
    them across tasks): close the ones past CONN_MAX_AGE or broken, and have the next use
    health-check the rest (CONN_HEALTH_CHECKS), so a restarted replica's dead connection is
    replaced transparently instead of failing the task's first read."""
    from django.db import close_old_connections

    close_old_connections()
