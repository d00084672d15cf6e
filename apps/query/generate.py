"""Step 5 of a question, on the generate (or generate_batch) pool: the answer task's work.

Drop the work if the request's deadline passed or its client has gone; otherwise compose
the answer with the configured backend behind the generation circuit breaker and a
generation slot (apps/operations/overload: breaker.py, capacity.py), and deliver it
(deliver.py). When the backend fails (overloaded, unavailable, timed out, rejected the
prompt), when its breaker is open, or when no slot frees up before the deadline, the
answer falls back to the extractive one, flagged ``degraded`` with the reason: a query
never fails because generation did (docs/overload.md).

The retrieve step (retrieve.py) also calls ``answer_compose`` for extractive answers,
which need no model and so no hop to the generate queue.
"""
import logging
import time
from collections.abc import Callable

from django.conf import settings

from apps.generation.services.answering import (
    Answer,
    answer_extract_cited,
    answer_generate,
    generation_backend,
    passages_from_hits,
)
from apps.generation.services.backends import ExtractiveBackend, GenerationBackend, GenerationError
from apps.generation.services.prompting import Passage, PromptTooLong
from apps.operations.overload.breaker import CircuitBreaker
from apps.operations.overload.capacity import GenerationSlots
from apps.operations.overload.policy import overload_policy
from apps.operations.tracing import span
from workers.load import service_sample

from .deliver import answer_deliver, stream_writers
from .log import query_log_finish, query_dropped
from .models import QueryLog
from .plan import QueryPlan, Searched

logger = logging.getLogger(__name__)


def answer_task_run(*, searched: Searched, question: str, plan: QueryPlan) -> dict | None:
    """The answer task's work: drop it if its client has gone, else generate and deliver."""
    if query_dropped(plan, queue=plan.priority_class.generate_queue.value, step="generation"):
        return None
    try:
        return answer_make(searched=searched, question=question, plan=plan)
    except Exception as exc:
        query_log_finish(query_id=plan.query_id, outcome=QueryLog.Outcome.FAILED, error=f"generation: {exc!r}"[:500])
        raise


def answer_make(*, searched: Searched, question: str, plan: QueryPlan) -> dict:
    """Compose ``plan``'s answer from ``searched`` and deliver it; the response body."""
    on_token, on_reset = stream_writers(plan)
    answer = answer_compose(question=question, hits=searched.hits, on_token=on_token, on_reset=on_reset,
                            priority_class=plan.priority_class, deadline=plan.deadline,
                            extractive_reason=searched.extractive_reason)
    return answer_deliver(answer=answer, searched=searched, question=question, plan=plan)


def generation_breaker() -> CircuitBreaker:
    policy = overload_policy()
    return CircuitBreaker(name=settings.SLUICE_GENERATION_BACKEND, failures=policy.breaker_failures,
                          open_seconds=policy.breaker_open_seconds)


def _slots(backend: GenerationBackend) -> GenerationSlots:
    policy = overload_policy()
    server_limit = backend.limits().max_concurrent_requests
    # The policy may keep headroom below the server's own limit, never go above it.
    limit = min(policy.generation_max_concurrency, server_limit) if policy.generation_max_concurrency else server_limit
    return GenerationSlots(name=backend.name, limit=limit, batch_share=policy.batch_generation_share)


def answer_compose(*, question: str, hits: list[dict], on_token: Callable[[str], bool] | None = None,
                   on_reset: Callable[[], None] | None = None, priority_class: str = "interactive",
                   deadline: float | None = None, extractive_reason: str = "") -> Answer:
    """Answer ``question`` from ``hits``; with ``on_token``, stream pieces to it as they come
    (it returns False to cancel: the backend stream is closed and the answer so far kept);
    ``on_reset`` is called when generated pieces were streamed and the answer then falls
    back to the extractive one (the client discards the pieces it has).

    ``deadline`` (epoch seconds) bounds the wait for a generation slot and the generation
    itself; ``extractive_reason`` asks for the degraded extractive answer straight away
    (admission control routed the request around generation)."""
    started = time.perf_counter()
    passages = passages_from_hits(hits)
    backend = generation_backend()
    with span("sluice.generate", backend=backend.name, passages=len(passages),
              streamed=on_token is not None) as current:
        if extractive_reason:
            answer = answer_extract_cited(question, passages, on_token=on_token, reason=extractive_reason)
        elif isinstance(backend, ExtractiveBackend) or not passages:
            answer = answer_extract_cited(question, passages, on_token=on_token)
        else:
            answer = _generate_guarded(backend, question, passages, on_token=on_token, on_reset=on_reset,
                                       priority_class=priority_class, deadline=deadline)
        current.set_attribute("sluice.generator", answer.generator)
        current.set_attribute("sluice.degraded", answer.degraded)
    answer.generate_ms = round((time.perf_counter() - started) * 1000, 1)
    return answer


# Below this many seconds left before the deadline, a request is not sent to the server at
# all: the call could only time out, and a timeout must not count against the server.
MIN_GENERATION_SECONDS = 1.0


def _generate_guarded(backend: GenerationBackend, question: str, passages: list[Passage], *, on_token,
                      on_reset, priority_class: str, deadline: float | None) -> Answer:
    """``answer_generate`` behind the breaker and a generation slot; extractive when either says no.

    Only failures of the server count against the breaker: a timeout counts when the call
    had the full SLUICE_GENERATION_TIMEOUT, not when the request's own deadline cut it."""
    def fallback(reason: str) -> Answer:
        if emitted and on_reset is not None:
            on_reset()  # the client drops the partial generated text before the extractive one
        return answer_extract_cited(question, passages, on_token=on_token, reason=reason)

    emitted = False
    breaker = generation_breaker()
    permit = breaker.allow()
    if permit is None:
        service_sample(None)  # not a generation: keep it out of the queue's service times
        return fallback("breaker_open: the generation server failed repeatedly; retrying it shortly")
    full_timeout = settings.SLUICE_GENERATION_TIMEOUT
    try:
        slots = _slots(backend)
    except GenerationError as exc:  # /info unreachable: the server is down
        breaker.record_failure(permit, exc.kind)
        service_sample(None)
        return fallback(f"{exc.kind}: {exc}")
    # A slot is waited for until there is just enough time left to generate (async requests
    # have long deadlines); without a deadline, for as long as a generation may take.
    wait_until = (deadline - MIN_GENERATION_SECONDS) if deadline is not None else time.time() + full_timeout
    lease = max(full_timeout, (deadline - time.time()) if deadline is not None else 0.0) + 5
    token = slots.acquire(priority_class=priority_class, lease_seconds=lease, wait_until=wait_until)
    if token is None:
        breaker.release(permit)
        service_sample(None)
        return fallback(f"generation_busy: all {slots.limit} generation slots stayed busy until the deadline")
    started = time.perf_counter()
    timeout = full_timeout if deadline is None else max(0.1, min(full_timeout, deadline - time.time()))

    def on_piece(piece: str) -> bool:
        nonlocal emitted
        emitted = True
        return on_token(piece) and (deadline is None or time.time() < deadline)

    try:
        answer = answer_generate(backend, question, passages, on_token=on_piece if on_token else None, timeout=timeout)
    except (GenerationError, PromptTooLong) as exc:
        kind = getattr(exc, "kind", "prompt_too_long")
        server_failed = isinstance(exc, GenerationError) and exc.retryable and (
            exc.kind != "timeout" or timeout >= full_timeout)
        if server_failed:
            breaker.record_failure(permit, kind)
        elif isinstance(exc, GenerationError) and exc.kind in ("validation", "bad_response"):
            breaker.record_success(permit)  # the server is up and answering
        else:
            breaker.release(permit)
        logger.warning("generation by %s failed (%s: %s); answering extractively", backend.name, kind, exc)
        return fallback(f"{kind}: {exc}")
    except BaseException:
        breaker.release(permit)
        raise
    finally:
        slots.release(token)
        service_sample(time.perf_counter() - started)  # the slot's time, not the wait for it
    breaker.record_success(permit)
    return answer
