"""Deadline propagation: work whose client has given up is dropped, not done.

Every query-path task carries its request's deadline twice: as Celery's ``expires`` (a
worker that receives an expired message revokes it without running it; set
``EXPIRES_GRACE`` after the deadline, a backstop for messages stuck in a queue) and as an
explicit ``deadline`` (epoch seconds) that tasks check with ``deadline_check`` before each
expensive step (embedding, search, generation), together with the request's cancel flag
(set by the web tier when a streaming client disconnects or a sync wait times out).
Both kinds of drop are counted in ``sluice_tasks_dropped_total{queue, reason}``.
"""
import logging
import time

from celery import signals

from apps.operations.metrics import counter, metric_inc

from .state import state_redis

logger = logging.getLogger(__name__)

# Celery's ``expires`` is a backstop this long after the deadline: normally the explicit
# check drops the work first, and records why in the query log.
EXPIRES_GRACE = 10.0

TASKS_DROPPED = counter("sluice_tasks_dropped", "Tasks dropped because their client had given up",
                        labels=["queue", "reason"])


def cancel_key(request_id: int | str) -> str:
    """Set (with a TTL) by the web tier when the client of ``request_id`` has gone."""
    return f"sluice:cancel:{request_id}"


def deadline_check(*, deadline: float | None, request_id: int | str | None, queue: str, step: str) -> str | None:
    """``expired`` or ``cancelled`` when the work should be dropped (counted and logged),
    else None."""
    reason = None
    if deadline is not None and time.time() >= deadline:
        reason = "expired"
    elif request_id is not None and state_redis().exists(cancel_key(request_id)):
        reason = "cancelled"
    if reason is not None:
        metric_inc(TASKS_DROPPED, queue=queue, reason=reason)
        logger.info("dropped %s of request %s on %s: %s", step, request_id, queue,
                    "its deadline passed" if reason == "expired" else "its client gave up")
    return reason


@signals.task_revoked.connect
def _revoked(request=None, expired=False, **kwargs) -> None:
    if expired:
        queue = ((getattr(request, "delivery_info", None) or {}).get("routing_key")) or "unknown"
        metric_inc(TASKS_DROPPED, queue=queue, reason="expired_in_queue")
        logger.info("dropped task %s on %s: it expired while queued", getattr(request, "id", "?"), queue)
