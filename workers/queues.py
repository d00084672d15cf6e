"""Every queue Sluice uses, declared once, and the priorities inside a queue.

Each queue has its own worker pool (``stack up`` starts one per queue; in production one
deployment per queue), so heavy work on one never starves another.
"""
import enum


class Queue(enum.StrEnum):
    # Chunk embedding for ingestion, in short steps at bulk priority (CPU/GPU bound; the
    # model is loaded once per worker process).
    EMBED = "embed"
    # Query embedding for searches and queries: its own pool, so an interactive request
    # never waits for an ingestion step in progress, let alone for the backlog.
    EMBED_INTERACTIVE = "embed_interactive"
    # Vector + full-text retrieval against the read replicas (I/O bound).
    RETRIEVE = "retrieve"
    # Calls to the generation backend (TGI / OpenAI-compatible; I/O bound, long-lived).
    GENERATE = "generate"


class Priority(enum.IntEnum):
    """Message priority inside a queue. With Redis, 0 is served first."""

    INTERACTIVE = 0
    DEFAULT = 3
    BULK = 9


# Redis emulates priorities with one list per step: `embed`, `embed:3`, `embed:9`, ...
# (celery docs: "Redis Message Priorities").
PRIORITY_STEPS = sorted({int(p) for p in Priority})
PRIORITY_SEP = ":"


def queue_redis_keys(queue: str) -> list[str]:
    """The Redis list keys that hold ``queue``'s waiting messages, highest priority first."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]
