"""Every queue Sluice uses, declared once, the priorities inside a queue, and the request
classes that map onto them (docs/queues.md, docs/overload.md).

Each queue has its own worker pool (``stack up`` starts one per queue; in production one
deployment per queue), so heavy work on one never starves another.
"""
import enum

from django.db import models


class Queue(enum.StrEnum):
    # Chunk embedding for ingestion, in short steps at bulk priority (CPU/GPU bound; the
    # model is loaded once per worker process).
    EMBED = "embed"
    # The interactive read path: query embedding (the pool's own model copy, so a query never
    # waits for an ingestion step, let alone for the backlog), vector + full-text retrieval
    # against the read replicas, and extractive answers. One task per search: each queue hop
    # costs milliseconds (docs/benchmarks.md: query overhead).
    RETRIEVE = "retrieve"
    # Calls to the generation backend (TGI / OpenAI-compatible; I/O bound, long-lived) for
    # critical and interactive requests.
    GENERATE = "generate"
    # The same for batch-class requests: a pool of its own, so long batch generations can
    # never occupy the threads that interactive answers need (docs/overload.md).
    GENERATE_BATCH = "generate_batch"


class Priority(enum.IntEnum):
    """Message priority inside a queue. With Redis, 0 is served first.

    The first three are the request classes of the query path (docs/overload.md); BULK is
    ingestion's background work."""

    CRITICAL = 0
    INTERACTIVE = 3
    BATCH = 6
    BULK = 9
    DEFAULT = INTERACTIVE


class PriorityClass(models.TextChoices):
    """The class of a request (an API key's ``priority``), highest first: the one
    definition overload control, the API and API keys use (docs/overload.md)."""

    CRITICAL = "critical"
    INTERACTIVE = "interactive"
    BATCH = "batch"

    @property
    def priority(self) -> "Priority":
        """Its message priority inside a queue."""
        return Priority[self.name]

    @property
    def rank(self) -> int:
        """batch 0 < interactive 1 < critical 2: a request may lower its class, never raise it."""
        return len(PriorityClass) - 1 - list(PriorityClass).index(self)

    @property
    def generate_queue(self) -> "Queue":
        """Batch answers have a generate pool of their own, so they never occupy the threads
        interactive answers need."""
        return Queue.GENERATE_BATCH if self is PriorityClass.BATCH else Queue.GENERATE


# Redis emulates priorities with one list per step: `embed`, `embed:3`, `embed:9`, ...
# (celery docs: "Redis Message Priorities").
PRIORITY_STEPS = sorted({int(p) for p in Priority})
PRIORITY_SEP = ":"


def queue_redis_keys(queue: str) -> list[str]:
    """The Redis list keys that hold ``queue``'s waiting messages, highest priority first."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]
