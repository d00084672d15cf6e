"""The queue page's rolling history (docs/operations.md, "Charts in the admin"): what the
queues and admission control did over the last hour, kept small in the state Redis.

One worker of the deployment records a sample every ``SLUICE_HISTORY_INTERVAL`` seconds
(``history_sample``, a periodic job: workers/periodic.py, registered in
``OperationsConfig.ready()``), so no extra process is needed and the history keeps
filling while any worker is up. A sample holds

- per queue, its depth and the age of its oldest waiting message (``queues_state``, what
  the queue page shows);
- the running totals of two counters of ``/metrics`` (apps/operations/metrics.py):
  admission decisions per request class, admitted or rejected (``sluice_admissions``),
  and answers per ``served_by`` rung (``sluice_answers_served``).

Totals, not deltas, are stored: the reader takes the difference between consecutive
samples, so a missed sample (no worker up for a while) widens one interval instead of
losing its counts, and a counter that went back (Redis lost its data) counts from zero.

Layout: one sorted set, ``sluice:history``, a JSON sample per member scored by its Unix
time; each write drops what is older than ``SLUICE_HISTORY_WINDOW`` (and anything past
``MAX_SAMPLES``) and sets the key to expire one window after the last sample, so the
broker Redis (noeviction) holds at most an hour of samples, and nothing once sampling
stops for an hour.
"""
import dataclasses
import json
import logging
import time

from django.conf import settings

from workers.queues import PriorityClass, Queue
from workers.state import state_redis

from .metrics import metric_values

logger = logging.getLogger(__name__)

KEY = "sluice:history"
# A hard cap whatever the interval: an hour of samples at one a second.
MAX_SAMPLES = 3600
# The order served_by rungs are drawn in (others, if any appear, follow by name).
RUNGS = ("generation", "extractive", "exact_cache", "semantic_cache", "stale_cache")


def history_sample(*, now: float | None = None) -> dict:
    """Record one sample of the queues and the counters; returns it."""
    from apps.query.deliver import SERVED

    from .overload.admission import ADMISSIONS
    from .queues import queues_state

    now = time.time() if now is None else now
    admissions: dict[str, list[float]] = {}
    for labels, value in metric_values(ADMISSIONS).items():
        labels = dict(labels)
        totals = admissions.setdefault(labels["priority_class"], [0.0, 0.0])
        totals[1 if labels["route"] == "reject" else 0] += value
    served: dict[str, float] = {}
    for labels, value in metric_values(SERVED).items():
        rung = dict(labels)["served_by"]
        served[rung] = served.get(rung, 0.0) + value
    sample = {
        "t": round(now, 3),
        "q": {q.name: [q.depth, q.oldest_age_s] for q in queues_state()},
        "a": admissions,  # class -> [admitted, rejected], running totals
        "s": served,  # served_by -> running total
    }
    window = float(settings.SLUICE_HISTORY_WINDOW)
    pipe = state_redis().pipeline(transaction=True)
    pipe.zadd(KEY, {json.dumps(sample, separators=(",", ":")): now})
    pipe.zremrangebyscore(KEY, "-inf", f"({now - window}")
    pipe.zremrangebyrank(KEY, 0, -(MAX_SAMPLES + 1))
    pipe.expire(KEY, int(window) + 1)
    pipe.execute()
    return sample


def history_samples(*, since: float) -> list[dict]:
    """The stored samples taken at or after ``since`` (Unix time), oldest first. Raises
    the Redis error when the state Redis cannot be read."""
    return [json.loads(raw) for raw in state_redis().zrangebyscore(KEY, since, "+inf")]


@dataclasses.dataclass
class History:
    """The samples of the window, turned into the series the queue page draws: values per
    sample time (oldest first); the counter series start at the second sample (a delta
    needs two), with None where an interval had nothing to count."""

    now: float
    start: float  # where the charts' time axis begins
    times: list[float]
    depth: dict[str, list[float | None]]
    oldest_age: dict[str, list[float | None]]
    shed: dict[str, list[float | None]]  # class -> share of its admission decisions that rejected
    served_per_min: dict[str, list[float | None]]  # served_by -> answers per minute

    @property
    def empty(self) -> bool:
        return not self.times


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now  # a counter that went back restarted from 0


def history_read(*, window_s: float | None = None, now: float | None = None) -> History:
    """The last ``window_s`` seconds (SLUICE_HISTORY_WINDOW) of samples as series. The time
    axis spans the window, or less while the history is younger (at least a minute), so a
    fresh history is drawn across the chart rather than squeezed at its right edge."""
    now = time.time() if now is None else now
    window = float(settings.SLUICE_HISTORY_WINDOW if window_s is None else window_s)
    samples = history_samples(since=now - window)
    queues = sorted({name for s in samples for name in s["q"]}, key=_queue_order)
    classes = [c for c in PriorityClass.values if any(c in s["a"] for s in samples)]
    rungs = sorted({r for s in samples for r in s["s"]},
                   key=lambda r: (RUNGS.index(r) if r in RUNGS else len(RUNGS), r))
    first = samples[0]["t"] if samples else now
    history = History(
        now=now, start=max(now - window, min(first, now - 60)),
        times=[s["t"] for s in samples],
        depth={q: [s["q"][q][0] if q in s["q"] else None for s in samples] for q in queues},
        oldest_age={q: [(s["q"][q][1] or 0.0) if q in s["q"] else None for s in samples] for q in queues},
        shed={c: [None] for c in classes} if samples else {},
        served_per_min={r: [None] for r in rungs} if samples else {},
    )
    for before, after in zip(samples, samples[1:]):
        minutes = max(after["t"] - before["t"], 1e-3) / 60
        for c in classes:
            admitted, rejected = (_delta(a, b) for a, b in zip(after["a"].get(c, [0, 0]), before["a"].get(c, [0, 0])))
            history.shed[c].append(rejected / (admitted + rejected) if admitted + rejected > 0 else None)
        for r in rungs:
            history.served_per_min[r].append(_delta(after["s"].get(r, 0.0), before["s"].get(r, 0.0)) / minutes)
    return history


def _queue_order(name: str) -> tuple[int, str]:
    order = [q.value for q in Queue]
    return (order.index(name) if name in order else len(order), name)
