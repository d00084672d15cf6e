"""Worker start-up: run each queue's preload hooks (e.g. load the embedding model) once per
worker process, before it takes its first task.

Hooks are dotted paths in ``settings.SLUICE_WORKER_PRELOAD[queue]``, so this module stays
free of domain code. Prefork children run them on ``worker_process_init``; thread and solo
pools share one process and run them on ``worker_init``.
"""
import logging
import time

from celery import current_app, signals
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def _consumed_queues(app) -> list[str]:
    return sorted(app.amqp.queues.consume_from or [])


def run_preload_hooks(app) -> None:
    for queue in _consumed_queues(app):
        for path in settings.SLUICE_WORKER_PRELOAD.get(queue, []):
            started = time.perf_counter()
            import_string(path)()
            logger.info("preloaded %s for queue %s in %.2fs", path, queue, time.perf_counter() - started)


def _tracing(app) -> None:
    from apps.operations.tracing import tracing_setup

    tracing_setup(service="sluice-worker-" + "-".join(_consumed_queues(app)).replace("_", "-"))


@signals.worker_process_init.connect
def _preload_in_child(**kwargs) -> None:
    _tracing(current_app)
    run_preload_hooks(current_app)


@signals.worker_init.connect
def _preload_in_main(sender=None, **kwargs) -> None:
    pool = getattr(sender, "pool_cls", None)
    name = getattr(pool, "__module__", "") if pool else ""
    if "prefork" not in name:
        _tracing(sender.app)
        run_preload_hooks(sender.app)
