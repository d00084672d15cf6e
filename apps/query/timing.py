"""The ``timings`` of search and query responses: each stage's own time as its worker
measured it, plus what the web tier measured around them.

- ``<stage>_ms`` (``embed_ms``, ``retrieve_ms``, ``generate_ms``): time inside a task;
- ``web_ms``: the web tier's own work before waiting (authentication, validation, the
  collection lookup, the query log), enqueueing not included;
- ``queue_ms``: the rest of ``total_ms``: what the queues add (publishing the first task,
  workers picking each task up and handing its result on, the result's way back to the
  web tier);
- ``total_ms``: from the request reaching the view to the response body.
"""
import time

DERIVED = ("total_ms", "web_ms", "queue_ms")


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def timings_complete(timings: dict, *, total_ms: float, web_ms: float | None = None) -> dict:
    """``timings`` with ``total_ms``, ``web_ms`` (when known) and ``queue_ms`` added."""
    stages = {k: v for k, v in timings.items() if k not in DERIVED}
    out = {**stages, "total_ms": total_ms}
    if web_ms is not None:
        out["web_ms"] = web_ms
    out["queue_ms"] = round(max(0.0, total_ms - (web_ms or 0.0) - sum(stages.values())), 1)
    return out
