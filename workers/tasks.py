"""The task decorator every Sluice task uses: explicit queue, stable name, time limits,
and the poison-message guard (workers/recovery.py)."""
from collections.abc import Callable
from typing import Any

from django.conf import settings

from ragproject.celery import app

from .queues import Queue
from .recovery import poison_guarded

DEFAULT = object()


def task(*, name: str, queue: Queue, max_deaths: int | None | object = DEFAULT, **options: Any) -> Callable:
    """``@app.task`` with the queue stated explicitly and a stable dotted ``name``.

    ``options`` override the defaults (late acks and reject-on-worker-lost come from the
    settings; set ``soft_time_limit``/``time_limit``/``autoretry_for`` per task).
    ``max_deaths`` (default ``SLUICE_TASK_MAX_DEATHS``): a message whose worker died this
    many times while running it is dead-lettered instead of run again; None turns the
    guard off (two Redis round trips per task saved, for tasks whose messages expire
    within seconds anyway).
    """
    options.setdefault("bind", False)
    deaths = settings.SLUICE_TASK_MAX_DEATHS if max_deaths is DEFAULT else max_deaths

    def decorate(fn: Callable) -> Any:
        body = fn if deaths is None else poison_guarded(fn, task_name=name, queue=queue.value, max_deaths=deaths)
        return app.task(name=name, queue=queue.value, **options)(body)

    return decorate
