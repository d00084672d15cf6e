"""Periodic jobs run by the workers themselves: no extra process to deploy (docs/queues.md,
"Periodic jobs").

An app registers a job in its ``AppConfig.ready()`` with ``periodic_register``; every
worker's main process runs a small thread (the ``PeriodicJobs`` consumer step) that, when a
job is due, takes the job's lock in Redis (``SET NX`` with the interval as TTL). Only the
process that got the lock runs the job in that interval, so a job runs about once per
interval across the whole deployment, as long as any worker is up, and moves to another
worker when that one dies. Why not Celery beat: it is one more process (and one more
deployment) whose death silently stops the jobs; these jobs are exactly the ones that
must keep running while parts die.
"""
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from celery import bootsteps
from django.db import close_old_connections

from .state import state_redis

logger = logging.getLogger(__name__)

LOCK_KEY = "sluice:periodic:{name}"
TICK_SECONDS = 1.0


@dataclasses.dataclass
class Job:
    name: str
    run: Callable[[], object]
    interval: Callable[[], float]  # read at each run, so settings changes apply


_jobs: dict[str, Job] = {}


def periodic_register(*, name: str, run: Callable[[], object], interval: Callable[[], float] | float) -> None:
    """Run ``run()`` about every ``interval`` seconds on one worker of the deployment."""
    _jobs[name] = Job(name=name, run=run, interval=interval if callable(interval) else (lambda: interval))


def periodic_jobs() -> dict[str, Job]:
    return dict(_jobs)


def periodic_run_due(*, owner: str, next_due: dict[str, float]) -> None:
    """One tick: run every job that is due here and whose lock this process gets."""
    now = time.monotonic()
    for job in list(_jobs.values()):
        if next_due.get(job.name, 0.0) > now:
            continue
        interval = max(0.5, float(job.interval()))
        next_due[job.name] = now + interval
        try:
            if not state_redis().set(LOCK_KEY.format(name=job.name), owner, nx=True, px=int(interval * 1000)):
                continue  # another worker runs it this interval
        except Exception as exc:
            logger.debug("periodic job %s: no lock (%s)", job.name, exc)
            continue
        started = time.perf_counter()
        close_old_connections()  # Django's request-start rule, for this thread's connections
        try:
            job.run()
        except Exception:
            logger.exception("periodic job %s failed; it runs again in %.0fs", job.name, interval)
        finally:
            close_old_connections()
        logger.debug("periodic job %s ran in %.3fs", job.name, time.perf_counter() - started)


class PeriodicJobs(bootsteps.StartStopStep):
    """Runs the registered jobs in a daemon thread of the worker's main process while the
    consumer is connected."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()

    def start(self, consumer) -> None:
        from .recovery import instance_id

        self.stopped = threading.Event()
        owner = instance_id()
        stopped = self.stopped

        def loop() -> None:
            next_due: dict[str, float] = {}
            while not stopped.wait(TICK_SECONDS):
                periodic_run_due(owner=owner, next_due=next_due)

        self.thread = threading.Thread(target=loop, name="sluice-periodic", daemon=True)
        self.thread.start()

    def stop(self, consumer) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
