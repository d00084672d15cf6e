"""Generation backends behind one interface, chosen by name (``backend_from_settings``).

- ``tgi``: Hugging Face text-generation-inference. ``huggingface_hub.InferenceClient``
  ``.text_generation`` on the single-string prompt (``BuiltPrompt.text``); limits from
  TGI's ``GET /info``, cached for ``info_ttl`` seconds.
- ``openai``: any OpenAI-compatible chat server (TGI's ``/v1/chat/completions``, vLLM,
  ...), via ``InferenceClient.chat_completion`` with the two chat messages. Such servers
  have no standard way to tell their limits, so they come from constructor arguments,
  else from TGI's ``/info`` when the server has one, else from conservative defaults.
- ``extractive``: no server and no model: quotes the passages' best sentences
  (extractive.py). It needs nothing, so it can stand in when no server is set up.

Every failure is a ``GenerationError`` whose ``kind`` says what the caller can do:
``overloaded`` (HTTP 429, TGI's "overloaded", which TGI sends on streams as an event in
a 200 response), ``unavailable`` (5xx, TGI's 424 generation errors, connection failures,
a stream cut short), ``timeout`` (including HTTP 408/504), ``validation`` (400/413/422:
the request itself is wrong, e.g. a prompt over the window) and ``bad_response`` (a reply
that cannot be read, or another 4xx: wrong URL, bad token). ``retryable`` is true for
the first three.

Deadlines. ``timeout`` bounds ``generate()`` as a whole, and for ``stream()`` the wait
for the first token and for each next one. An HTTP read timeout alone cannot promise
that: TGI sends SSE keep-alive comments (every 15 s) while a request waits in its queue,
and each one restarts the read timer without producing a token. So each call runs its
HTTP exchange on a helper thread that hands results over a queue, and the caller's
thread waits on the queue with the deadline.

Cancelling a stream: stop iterating and ``close()`` the generator (or iterate inside
``contextlib.closing(...)``). ``InferenceClient`` keeps a streamed response open until the
client itself is closed (its exit stack owns the response; closing the token iterator
does not close it), so every call gets its own client, and the helper thread closes it
as soon as it sees the cancel: that closes the connection, and TGI frees the request's
slot. The helper notices when the next token (or error) reaches it, as closing a socket
from another thread does not wake a blocked read: within one token on a live stream; on
one that sends nothing, or only keep-alives, when the first token arrives or the HTTP
read timeout (the same ``timeout``) ends the wait. Until then its thread waits too.
"""
import contextlib
import dataclasses
import functools
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import httpx
import httpx2
from huggingface_hub import InferenceClient
from huggingface_hub import errors as hf_errors
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from .extractive import answer_extract
from .prompting import BuiltPrompt

logger = logging.getLogger(__name__)

T = TypeVar("T")

ERROR_KINDS = frozenset({"overloaded", "unavailable", "timeout", "bad_response", "validation"})
RETRYABLE_KINDS = frozenset({"overloaded", "unavailable", "timeout"})
BACKEND_KINDS = ("tgi", "openai", "extractive")
DEFAULT_TIMEOUT = 60.0
DEFAULT_INFO_TTL = 60.0
# For OpenAI-compatible servers that do not say: a window every current chat model has.
OPENAI_DEFAULT_MAX_TOTAL_TOKENS = 4096
OPENAI_DEFAULT_MAX_CONCURRENT_REQUESTS = 128  # TGI's default
# The extractive backend has no context window; these only keep budget arithmetic finite.
EXTRACTIVE_LIMITS_TOKENS = 1_000_000

_WORD_PIECE = re.compile(r"\S+\s*|\s+")


class GenerationError(Exception):
    """A generation request failed; ``kind`` says how (see the module docstring)."""

    def __init__(self, message: str, *, kind: str, status: int | None = None) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown GenerationError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling (Celery results).
        return (functools.partial(GenerationError, kind=self.kind, status=self.status), (str(self),))


@dataclasses.dataclass
class TokenEvent:
    """One piece of streamed answer text, for callers that pass pieces on as events;
    ``stream()`` itself yields plain strings."""

    text: str


@dataclasses.dataclass
class GenerationResult:
    """A complete answer. ``generated_tokens`` counts what the server counted (TGI's
    includes the end-of-sequence token); None where the backend does not count."""

    text: str
    finish_reason: str | None
    generated_tokens: int | None
    backend: str


@dataclasses.dataclass(frozen=True)
class ModelLimits:
    """What the model behind a backend accepts, as TGI's /info reports it."""

    max_input_tokens: int
    max_total_tokens: int
    max_concurrent_requests: int
    model_id: str

    def prompt_budget(self, *, max_new_tokens: int) -> int:
        """The ``max_input_tokens`` to give ``prompt_build``: room for the answer kept."""
        return min(self.max_input_tokens, self.max_total_tokens - max_new_tokens)


class GenerationBackend(Protocol):
    name: str

    def limits(self) -> ModelLimits: ...

    def generate(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> GenerationResult: ...

    def stream(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> Iterator[str]: ...


# --------------------------------------------------------------------------- TGI


class TGIBackend:
    """text-generation-inference at ``url`` (its root, e.g. ``http://tgi:8080``).

    ``timeout`` applies to ``/info`` requests; ``generate``/``stream`` take their own.
    ``token`` is sent as a bearer token; with None, ``huggingface_hub`` sends the locally
    configured Hugging Face token (``HF_TOKEN``), if any, as it does for every request.
    """

    name = "tgi"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        info_ttl: float = DEFAULT_INFO_TTL,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = token
        self._limits = _LimitsCache(ttl=info_ttl)

    def limits(self) -> ModelLimits:
        return self._limits.get(self._limits_fetch)

    def _limits_fetch(self) -> ModelLimits:
        info = _info_fetch(url=self.url, timeout=self.timeout, token=self.token, backend=self.name)
        limits = _limits_parse(info=info, fallback=None)
        if limits is None:
            raise GenerationError(
                f"tgi: {self.url}/info lacks max_input_tokens/max_total_tokens; is this a TGI server?",
                kind="bad_response",
            )
        return limits

    def generate(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> GenerationResult:
        def call(client: InferenceClient) -> Iterator[GenerationResult]:
            # return_full_text=False: TGI's compat route (where InferenceClient posts)
            # otherwise puts the prompt in front of the answer.
            output = client.text_generation(
                prompt.text, max_new_tokens=max_new_tokens, details=True, return_full_text=False
            )
            if not isinstance(output.generated_text, str):
                raise GenerationError(f"tgi: no generated_text in {output!r}", kind="bad_response")
            details = output.details
            yield GenerationResult(
                text=output.generated_text,
                finish_reason=_text_or_none(details.finish_reason if details else None),
                generated_tokens=details.generated_tokens if details else None,
                backend=self.name,
            )

        return _call_with_deadline(_client_run(self, call, timeout=timeout), timeout=timeout, backend=self.name)

    def stream(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> Iterator[str]:
        def call(client: InferenceClient) -> Iterator[str]:
            # details=True so that each token says whether it is special: without it the
            # iterator yields bare texts, the end-of-sequence "</s>" among them.
            events = client.text_generation(
                prompt.text, max_new_tokens=max_new_tokens, details=True, stream=True, return_full_text=False
            )
            finished = False
            for event in events:
                token = event.token
                if token is None:
                    raise GenerationError(f"tgi: stream event without a token: {event!r}", kind="bad_response")
                if not token.special and token.text:
                    yield token.text
                finished = event.generated_text is not None  # TGI sets it on the last event only
            if not finished:
                raise GenerationError("tgi: the stream ended before its last token", kind="unavailable")

        return _iterate_with_deadline(_client_run(self, call, timeout=timeout), timeout=timeout, backend=self.name)


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAIBackend:
    """An OpenAI-compatible chat server at ``url`` (root or ``.../v1``).

    ``model`` is sent as the request's "model" (TGI accepts anything; "tgi" is its
    convention). Limits: the ``max_*`` arguments where given, else the server's TGI
    ``/info`` if it has one, else ``OPENAI_DEFAULT_MAX_TOTAL_TOKENS`` with input up to
    one token less. ``timeout`` and ``token`` as for ``TGIBackend``.
    """

    name = "openai"

    def __init__(
        self,
        url: str,
        *,
        model: str = "tgi",
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        max_input_tokens: int | None = None,
        max_total_tokens: int | None = None,
        max_concurrent_requests: int | None = None,
        info_ttl: float = DEFAULT_INFO_TTL,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.token = token
        self._configured = {
            "max_input_tokens": max_input_tokens,
            "max_total_tokens": max_total_tokens,
            "max_concurrent_requests": max_concurrent_requests,
        }
        self._limits = _LimitsCache(ttl=info_ttl)

    def limits(self) -> ModelLimits:
        return self._limits.get(self._limits_fetch)

    def _limits_fetch(self) -> ModelLimits:
        configured = self._configured
        fallback_total = configured["max_total_tokens"] or OPENAI_DEFAULT_MAX_TOTAL_TOKENS
        fallback = ModelLimits(
            max_input_tokens=configured["max_input_tokens"] or fallback_total - 1,
            max_total_tokens=fallback_total,
            max_concurrent_requests=configured["max_concurrent_requests"] or OPENAI_DEFAULT_MAX_CONCURRENT_REQUESTS,
            model_id=self.model,
        )
        if configured["max_input_tokens"] and configured["max_total_tokens"]:
            return fallback  # nothing to ask the server
        root = re.sub(r"/v1(/chat/completions)?$", "", self.url)
        try:
            info = _info_fetch(url=root, timeout=self.timeout, token=self.token, backend=self.name)
        except GenerationError as error:
            if error.kind != "bad_response":
                raise  # the server is down or slow: generation would fail the same way
            logger.info("openai: no TGI /info at %s (%s); using configured/default limits", root, error)
            return fallback
        limits = _limits_parse(info=info, fallback=fallback)
        # What the operator configured wins over what the server reports.
        return dataclasses.replace(
            limits, **{name: value for name, value in configured.items() if value}
        )

    def generate(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> GenerationResult:
        def call(client: InferenceClient) -> Iterator[GenerationResult]:
            completion = client.chat_completion(
                messages=_chat_messages(prompt), model=self.model, max_tokens=max_new_tokens
            )
            if not completion.choices:
                raise GenerationError(f"openai: no choices in {completion!r}", kind="bad_response")
            choice = completion.choices[0]
            content = choice.message.content if choice.message else None
            usage = completion.usage
            yield GenerationResult(
                text=content or "",
                finish_reason=_text_or_none(choice.finish_reason),
                generated_tokens=usage.completion_tokens if usage else None,
                backend=self.name,
            )

        return _call_with_deadline(_client_run(self, call, timeout=timeout), timeout=timeout, backend=self.name)

    def stream(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> Iterator[str]:
        def call(client: InferenceClient) -> Iterator[str]:
            chunks = client.chat_completion(
                messages=_chat_messages(prompt), model=self.model, max_tokens=max_new_tokens, stream=True
            )
            finished = False
            for chunk in chunks:
                for choice in chunk.choices or ():  # a usage-only chunk has none
                    # Servers send no content for special tokens (TGI's EOS has None).
                    content = choice.delta.content if choice.delta else None
                    if content:
                        yield content
                    if choice.finish_reason:
                        finished = True
            if not finished:
                raise GenerationError("openai: the stream ended without a finish_reason", kind="unavailable")

        return _iterate_with_deadline(_client_run(self, call, timeout=timeout), timeout=timeout, backend=self.name)


# --------------------------------------------------------------------------- extractive


class ExtractiveBackend:
    """Answers by quoting the passages (extractive.py); no server, never fails for load."""

    name = "extractive"

    def __init__(self, *, max_sentences: int = 3, max_chars: int = 800) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars

    def limits(self) -> ModelLimits:
        return ModelLimits(
            max_input_tokens=EXTRACTIVE_LIMITS_TOKENS,
            max_total_tokens=EXTRACTIVE_LIMITS_TOKENS,
            max_concurrent_requests=EXTRACTIVE_LIMITS_TOKENS,
            model_id="extractive",
        )

    def generate(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> GenerationResult:
        answer = answer_extract(
            question=prompt.question,
            passages=prompt.passages,
            max_sentences=self.max_sentences,
            max_chars=self.max_chars,
        )
        return GenerationResult(text=answer.text, finish_reason="stop", generated_tokens=None, backend=self.name)

    def stream(self, *, prompt: BuiltPrompt, max_new_tokens: int, timeout: float) -> Iterator[str]:
        text = self.generate(prompt=prompt, max_new_tokens=max_new_tokens, timeout=timeout).text
        # Word-sized pieces, whitespace attached, so that joining them gives the text back.
        yield from _WORD_PIECE.findall(text)


# --------------------------------------------------------------------------- choosing


# Options each backend takes; backend_from_settings passes each backend only its own,
# so that one settings dict can serve whichever backend is configured.
_BACKEND_OPTIONS = {
    "tgi": frozenset({"timeout", "token", "info_ttl"}),
    "openai": frozenset(
        {"timeout", "token", "info_ttl", "model", "max_input_tokens", "max_total_tokens", "max_concurrent_requests"}
    ),
    "extractive": frozenset({"max_sentences", "max_chars"}),
}


def backend_from_settings(*, kind: str, url: str | None, **options: Any) -> GenerationBackend:
    """The backend named ``kind`` ("tgi", "openai" or "extractive").

    ``options`` meant for other backends are ignored and None values mean "default", so
    callers can pass every generation setting whichever backend is chosen; an option no
    backend knows is a TypeError (a typo should not pass silently).
    """
    kind = (kind or "").strip().lower()
    if kind not in _BACKEND_OPTIONS:
        raise ValueError(
            f"unknown generation backend {kind!r} (SLUICE_GENERATION_BACKEND); "
            f"expected one of {', '.join(BACKEND_KINDS)}"
        )
    unknown = sorted(set(options) - set().union(*_BACKEND_OPTIONS.values()))
    if unknown:
        raise TypeError(f"unknown generation backend option(s): {', '.join(unknown)}")
    own = {name: value for name, value in options.items() if name in _BACKEND_OPTIONS[kind] and value is not None}
    if kind == "extractive":
        return ExtractiveBackend(**own)
    if not url:
        raise ValueError(f"the {kind!r} generation backend needs a server URL: set SLUICE_GENERATION_URL")
    if kind == "tgi":
        return TGIBackend(url, **own)
    return OpenAIBackend(url, **own)


# --------------------------------------------------------------------------- HTTP plumbing


_DONE = object()


_tracer = trace.get_tracer("sluice.generation")  # OpenTelemetry's no-op unless tracing is on


def _client_iterate(
    *, url: str, token: str | None, timeout: float, call: Callable[[InferenceClient], Iterator[T]], parent=None,
) -> Iterator[T]:
    # A client span per server call, made here: huggingface_hub talks through httpx2, which
    # the httpx instrumentation does not patch. Its context goes to the server in a
    # `traceparent` header (TGI's own tracing continues the trace). Not the current span:
    # the caller's code between two yielded pieces is not part of the call.
    span = _tracer.start_span("generation.request", context=parent, kind=trace.SpanKind.CLIENT,
                              attributes={"server.address": url, "http.request.method": "POST"})
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    try:
        # One client per call: closing it is what closes a streamed response (see above).
        with InferenceClient(base_url=url, token=token, timeout=timeout, headers=headers) as client:
            yield from call(client)
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def _client_run(backend, call: Callable[[InferenceClient], Iterator[T]], *, timeout: float) -> Callable[[], Iterator[T]]:
    """``call`` on a fresh InferenceClient for ``backend``'s server (its url and token); it
    runs on a helper thread, so the caller's trace context travels with it."""
    return functools.partial(_client_iterate, url=backend.url, token=backend.token, timeout=timeout, call=call,
                             parent=otel_context.get_current())


def _iterate_with_deadline(produce: Callable[[], Iterator[T]], *, timeout: float, backend: str) -> Iterator[T]:
    """``produce()``'s items, each within ``timeout`` seconds of the previous one (or of
    the first ``next``), with errors as GenerationError. ``produce`` runs on a helper
    thread, which stops and cleans up after its current item once this generator is
    closed."""
    handoff: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    cancelled = threading.Event()

    def run() -> None:
        items = produce()
        try:
            for item in items:
                if cancelled.is_set():
                    return
                handoff.put((True, item))
            handoff.put((True, _DONE))
        except BaseException as error:  # handed to the caller's thread, raised there
            handoff.put((False, error))
        finally:
            # Closing the generator runs its cleanup (the InferenceClient's `with`) here,
            # on the thread that owns the connection.
            with contextlib.suppress(Exception):
                items.close()

    threading.Thread(target=run, name=f"generation-{backend}", daemon=True).start()
    try:
        while True:
            try:
                ok, item = handoff.get(timeout=timeout)
            except queue.Empty:
                raise GenerationError(
                    f"{backend}: nothing from the server within {timeout:g} s", kind="timeout"
                ) from None
            if not ok:
                translated = _error_translate(item, backend=backend)
                if translated is None:
                    raise item
                if translated is item:
                    raise translated
                raise translated from item
            if item is _DONE:
                return
            yield item
    finally:
        cancelled.set()


def _call_with_deadline(produce: Callable[[], Iterator[T]], *, timeout: float, backend: str) -> T:
    """The single item ``produce()`` yields, within ``timeout`` seconds."""
    with contextlib.closing(_iterate_with_deadline(produce, timeout=timeout, backend=backend)) as items:
        for item in items:
            return item
    raise GenerationError(f"{backend}: no result", kind="bad_response")


class _LimitsCache:
    """The last limits fetched, for ``ttl`` seconds; a stale copy beats none when a
    refresh fails (the next call tries again)."""

    def __init__(self, *, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: ModelLimits | None = None
        self._fetched_at = -math.inf

    def get(self, fetch: Callable[[], ModelLimits]) -> ModelLimits:
        with self._lock:
            if self._value is not None and time.monotonic() - self._fetched_at < self.ttl:
                return self._value
            try:
                value = fetch()
            except GenerationError as error:
                if self._value is None:
                    raise
                logger.warning("generation limits: refresh failed (%s); keeping the last ones", error)
                return self._value
            self._value, self._fetched_at = value, time.monotonic()
            return value


def _info_fetch(*, url: str, timeout: float, token: str | None, backend: str) -> dict[str, Any]:
    """TGI's ``GET /info``, with errors as GenerationError (a missing route: bad_response)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url}/info", headers=headers, timeout=timeout)
    except httpx.TimeoutException as error:
        raise GenerationError(f"{backend}: {url}/info timed out after {timeout:g} s", kind="timeout") from error
    except httpx.TransportError as error:
        raise GenerationError(f"{backend}: cannot reach {url}/info: {error}", kind="unavailable") from error
    if response.status_code != 200:
        kind = _kind_for_status(status=response.status_code, error_type=_error_type(response))
        raise GenerationError(
            f"{backend}: {url}/info answered HTTP {response.status_code}: {response.text[:200]}",
            kind=kind,
            status=response.status_code,
        )
    try:
        info = response.json()
    except ValueError as error:
        raise GenerationError(f"{backend}: {url}/info is not JSON", kind="bad_response") from error
    if not isinstance(info, dict):
        raise GenerationError(f"{backend}: {url}/info is not a JSON object", kind="bad_response")
    return info


def _limits_parse(*, info: dict[str, Any], fallback: ModelLimits | None) -> ModelLimits | None:
    """Limits from an /info payload; fields it lacks come from ``fallback`` (None: fail)."""
    max_total = _positive_int(info.get("max_total_tokens"))
    # "max_input_tokens" since TGI 2.0; 1.x called it "max_input_length".
    max_input = _positive_int(info.get("max_input_tokens")) or _positive_int(info.get("max_input_length"))
    if fallback is None and (max_total is None or max_input is None):
        return None
    if fallback is not None:
        max_total = max_total or fallback.max_total_tokens
        max_input = max_input or min(fallback.max_input_tokens, max_total - 1)
    concurrent = _positive_int(info.get("max_concurrent_requests"))
    model_id = info.get("model_id")
    return ModelLimits(
        max_input_tokens=max_input,
        max_total_tokens=max_total,
        max_concurrent_requests=concurrent or (fallback.max_concurrent_requests if fallback else 128),
        model_id=model_id if isinstance(model_id, str) and model_id else (fallback.model_id if fallback else ""),
    )


def _error_translate(error: BaseException, *, backend: str) -> GenerationError | None:
    """The GenerationError for an exception from huggingface_hub/httpx, or None when it is
    none of theirs (a bug, which should surface as itself)."""
    if isinstance(error, GenerationError):
        return error
    if isinstance(error, (hf_errors.InferenceTimeoutError, httpx2.TimeoutException, TimeoutError)):
        return GenerationError(f"{backend}: timed out: {error}", kind="timeout")
    if isinstance(error, hf_errors.UnknownError) and error.args and isinstance(error.args[0], dict):
        # OpenAI-style error event in a chat stream: {"message": ..., "http_status_code": ...}.
        payload = error.args[0]
        status = payload.get("http_status_code")
        status = status if isinstance(status, int) else None
        kind = _kind_for_status(status=status, error_type=payload.get("error_type"), message=payload.get("message"))
        return GenerationError(f"{backend}: {payload.get('message') or payload}", kind=kind, status=status)
    if isinstance(error, hf_errors.TextGenerationError):
        # TGI's own error types: raised from an HTTP error, or from an SSE error event in a
        # 200 stream (then there is no status).
        cause = error if isinstance(error, hf_errors.HfHubHTTPError) else error.__cause__
        status = cause.response.status_code if isinstance(cause, hf_errors.HfHubHTTPError) else None
        error_type = {
            hf_errors.OverloadedError: "overloaded",
            hf_errors.ValidationError: "validation",
            hf_errors.GenerationError: "generation",
            hf_errors.IncompleteGenerationError: "incomplete_generation",
        }.get(type(error))
        kind = _kind_for_status(status=status, error_type=error_type, message=str(error))
        return GenerationError(f"{backend}: {error}", kind=kind, status=status)
    if isinstance(error, hf_errors.HfHubHTTPError):
        status = error.response.status_code
        kind = _kind_for_status(status=status, error_type=_error_type(error.response))
        detail = error.server_message or str(error).splitlines()[0]
        return GenerationError(f"{backend}: HTTP {status}: {detail}", kind=kind, status=status)
    if isinstance(error, (httpx2.TransportError, ConnectionError)):
        # Refused or dropped connections, a stream cut mid-chunk.
        return GenerationError(f"{backend}: connection failed: {error!r}", kind="unavailable")
    if isinstance(error, (ValueError, LookupError, TypeError, AttributeError)):
        # What parsing a reply of the wrong shape raises (json, the output dataclasses).
        return GenerationError(f"{backend}: unreadable reply: {error!r}", kind="bad_response")
    return None


def _kind_for_status(*, status: int | None, error_type: Any = None, message: Any = None) -> str:
    if error_type == "overloaded" or status == 429 or (isinstance(message, str) and "overloaded" in message.lower()):
        return "overloaded"
    if error_type == "validation" or status in (400, 413, 422):
        return "validation"
    if status in (408, 504):
        return "timeout"
    if status is None or status == 424 or status >= 500:
        return "unavailable"
    return "bad_response"


def _error_type(response: httpx.Response | httpx2.Response) -> Any:
    with contextlib.suppress(Exception):
        payload = response.json()
        if isinstance(payload, dict):
            return payload.get("error_type")
    return None


def _chat_messages(prompt: BuiltPrompt) -> list[dict[str, str]]:
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
