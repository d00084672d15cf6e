"""Compose an answer with citations from retrieved hits, with the configured backend.

When the backend fails (overloaded, unavailable, timed out, rejected the prompt), when
its circuit breaker is open, when no generation slot frees up before the request's
deadline, the answer falls back to the extractive one, flagged ``degraded`` with the
reason: a query never fails because generation did (capacity.py, docs/overload.md).
"""
import dataclasses
import functools
import logging
import re
import time
from collections.abc import Callable

from django.conf import settings

from .backends import ExtractiveBackend, GenerationBackend, GenerationError, backend_from_settings
from .capacity import CircuitBreaker, GenerationSlots
from .extractive import answer_extract
from .prompting import Passage, PromptTooLong, prompt_build

logger = logging.getLogger(__name__)

_CITATION = re.compile(r"\[(\d{1,3})\]")
SNIPPET_CHARS = 300


@functools.cache
def generation_backend() -> GenerationBackend:
    """The configured backend, built once per process (its /info cache lives in it)."""
    return backend_from_settings(
        kind=settings.SLUICE_GENERATION_BACKEND,
        url=settings.SLUICE_GENERATION_URL or None,
        timeout=settings.SLUICE_GENERATION_TIMEOUT,
        token=settings.SLUICE_GENERATION_TOKEN or None,
        model=settings.SLUICE_GENERATION_MODEL,
        info_ttl=settings.SLUICE_GENERATION_INFO_TTL,
    )


def passages_from_hits(hits: list[dict]) -> list[Passage]:
    return [
        Passage(
            chunk_id=h["chunk_id"], document_id=h["document_id"], title=h["title"], text=h["text"],
            score=h["score"], heading_path=tuple(h.get("heading_path") or ()),
        )
        for h in hits
    ]


def citations_build(*, text: str, passages: list[Passage]) -> list[dict]:
    """The passages the answer cites as ``[n]``, in order of first citation."""
    cited: list[int] = []
    for match in _CITATION.finditer(text):
        n = int(match.group(1))
        if 1 <= n <= len(passages) and n not in cited:
            cited.append(n)
    return [
        {
            "n": n, "chunk_id": passages[n - 1].chunk_id, "document_id": passages[n - 1].document_id,
            "title": passages[n - 1].title, "snippet": passages[n - 1].text[:SNIPPET_CHARS],
            "score": passages[n - 1].score,
        }
        for n in cited
    ]


@dataclasses.dataclass
class Answer:
    answer: str
    citations: list[dict]
    generator: str
    degraded: bool = False
    degraded_reason: str = ""
    cancelled: bool = False
    generate_ms: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _extractive(question: str, passages: list[Passage], *, on_token, reason: str = "") -> Answer:
    extracted = answer_extract(question=question, passages=passages)
    if on_token is not None:
        on_token(extracted.text)
    return Answer(
        answer=extracted.text, citations=citations_build(text=extracted.text, passages=passages),
        generator="extractive", degraded=bool(reason), degraded_reason=reason,
    )


def generation_configured() -> bool:
    """Whether answers come from a model (tgi/openai) rather than extraction alone."""
    return settings.SLUICE_GENERATION_BACKEND != "extractive"


def generation_breaker() -> CircuitBreaker:
    from apps.operations.overload.policy import overload_policy

    policy = overload_policy()
    return CircuitBreaker(name=settings.SLUICE_GENERATION_BACKEND, failures=policy.breaker_failures,
                          open_seconds=policy.breaker_open_seconds)


def _slots(backend: GenerationBackend) -> GenerationSlots:
    from apps.operations.overload.policy import overload_policy

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
    if extractive_reason:
        answer = _extractive(question, passages, on_token=on_token, reason=extractive_reason)
    elif isinstance(backend, ExtractiveBackend) or not passages:
        answer = _extractive(question, passages, on_token=on_token)
    else:
        answer = _generate_guarded(backend, question, passages, on_token=on_token, on_reset=on_reset,
                                   priority_class=priority_class, deadline=deadline)
    answer.generate_ms = round((time.perf_counter() - started) * 1000, 1)
    return answer


# Below this many seconds left before the deadline, a request is not sent to the server at
# all: the call could only time out, and a timeout must not count against the server.
MIN_GENERATION_SECONDS = 1.0


def _generate_guarded(backend: GenerationBackend, question: str, passages: list[Passage], *, on_token,
                      on_reset, priority_class: str, deadline: float | None) -> Answer:
    """``_generate`` behind the breaker and a generation slot; extractive when either says no.

    Only failures of the server count against the breaker: a timeout counts when the call
    had the full SLUICE_GENERATION_TIMEOUT, not when the request's own deadline cut it."""
    from workers.load import service_sample

    def fallback(reason: str) -> Answer:
        if emitted and on_reset is not None:
            on_reset()  # the client drops the partial generated text before the extractive one
        return _extractive(question, passages, on_token=on_token, reason=reason)

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
        answer = _generate(backend, question, passages, on_token=on_piece if on_token else None, timeout=timeout)
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


def _generate(backend: GenerationBackend, question: str, passages: list[Passage], *, on_token,
              timeout: float) -> Answer:
    max_new_tokens = settings.SLUICE_GENERATION_MAX_NEW_TOKENS
    limits = backend.limits()
    prompt = prompt_build(
        question=question, passages=passages, max_new_tokens=max_new_tokens,
        max_input_tokens=limits.prompt_budget(max_new_tokens=max_new_tokens),
    )
    cancelled = False
    if on_token is None:
        text = backend.generate(prompt=prompt, max_new_tokens=max_new_tokens, timeout=timeout).text
    else:
        pieces: list[str] = []
        stream = backend.stream(prompt=prompt, max_new_tokens=max_new_tokens, timeout=timeout)
        try:
            for piece in stream:
                pieces.append(piece)
                if not on_token(piece):
                    cancelled = True
                    break
        finally:
            stream.close()  # releases the server's slot when the client went away
        text = "".join(pieces)
    return Answer(
        answer=text.strip(), citations=citations_build(text=text, passages=prompt.passages),
        generator=backend.name, cancelled=cancelled,
    )
