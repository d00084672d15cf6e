"""How each queue's worker pool is started: one source of truth for the stack manager
and the deployment entrypoints (docker/entrypoints/worker-*)."""
import sys

from django.conf import settings

from .queues import Queue

# I/O-bound pools use threads so one process can wait on many replicas/TGI calls (the
# retrieve pool's threads share one copy of the embedding model for query vectors); the
# bulk embedding pool uses processes so each has its own model copy and GIL.
POOL_TYPE = {
    Queue.EMBED: "prefork",
    Queue.RETRIEVE: "threads",
    Queue.GENERATE: "threads",
    Queue.GENERATE_BATCH: "threads",
}


WORKER_PREFIX = "worker-"


def worker_role(queue: Queue) -> str:
    """The role (process, service, Deployment) name of ``queue``'s worker pool:
    ``worker-<queue>`` with dashes, a valid Kubernetes name (``worker-generate-batch``)."""
    return WORKER_PREFIX + queue.value.replace("_", "-")


def role_queue(role: str) -> Queue | None:
    """The queue a worker role consumes, or None when ``role`` is not a worker role."""
    return next((q for q in Queue if worker_role(q) == role), None)


def _celery(python: str | None) -> list[str]:
    """``python -m celery -A ragproject``: the start of every Celery command line."""
    return [python or sys.executable, "-m", "celery", "-A", "ragproject"]


def worker_argv(*, queue: Queue, python: str | None = None) -> list[str]:
    """The command line that starts the worker pool for ``queue``."""
    return [
        *_celery(python),
        "worker",
        "--queues",
        queue.value,
        "--hostname",
        f"{queue.value}@%h",
        "--pool",
        POOL_TYPE[queue],
        "--concurrency",
        str(settings.SLUICE_WORKER_CONCURRENCY[queue.value]),
        "--prefetch-multiplier",
        "1",
        *(["--task-events"] if settings.SLUICE_WORKER_TASK_EVENTS[queue.value] else []),
        "--loglevel",
        settings.LOG_LEVEL,
    ]


def flower_argv(*, port: int, address: str, python: str | None = None) -> list[str]:
    """Flower's command line; its basic auth is passed as FLOWER_BASIC_AUTH in the
    environment so the password does not show up in ``ps``."""
    return [
        *_celery(python),
        "flower",
        f"--port={port}",
        f"--address={address}",
        "--purge_offline_workers=60",
    ]


def web_argv(*, port: int, address: str, python: str | None = None) -> list[str]:
    return [
        python or sys.executable,
        "-m",
        "uvicorn",
        "ragproject.asgi:application",
        "--host",
        address,
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--timeout-graceful-shutdown",
        "10",
    ]
