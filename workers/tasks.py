"""The task decorator every Sluice task uses: explicit queue, stable name, time limits."""
from collections.abc import Callable
from typing import Any

from ragproject.celery import app

from .queues import Queue


def task(*, name: str, queue: Queue, **options: Any) -> Callable:
    """``@app.task`` with the queue stated explicitly and a stable dotted ``name``.

    ``options`` override the defaults (late acks and reject-on-worker-lost come from the
    settings; set ``soft_time_limit``/``time_limit``/``autoretry_for`` per task).
    """
    options.setdefault("bind", False)
    return app.task(name=name, queue=queue.value, **options)
