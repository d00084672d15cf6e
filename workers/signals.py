"""Generic Celery signal handlers: a publish timestamp on every message, and task latency
and outcome metrics per queue. No domain code (docs/operations.md lists the metrics)."""
import time

from celery import signals

# Set on every published message; the admin's queue page reads it to show how long the
# oldest waiting message has waited, and workers to measure time spent queued.
SENT_AT_HEADER = "sluice_sent_at"


@signals.before_task_publish.connect
def _stamp_sent_at(headers=None, **kwargs) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())
