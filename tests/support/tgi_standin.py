"""A stand-in for Hugging Face text-generation-inference (TGI), for tests and benchmarks.

Not a product feature. There is no GPU and there are no weights here, so this server
speaks TGI's HTTP protocol and overload behaviour closely enough that Sluice's
production client (``huggingface_hub.InferenceClient``) cannot tell it from TGI, while
generating deterministic text at a configurable speed. The behaviour is modelled on
TGI 3.x's router (``router/src/server.rs``, ``validation.rs``, ``infer/mod.rs``).

Routes
    GET  /health, GET /, GET /ping   200, empty body; 503 {"error":"unhealthy",
                                     "error_type":"healthcheck"} while the "down" fault is set
    GET  /info                       model and router limits, as TGI reports them
    GET  /metrics                    a few Prometheus counters named as TGI names them
    GET  /v1/models                  OpenAI-style model list
    POST /generate                   {"inputs": str, "parameters": {...}} -> {"generated_text", "details"?}
    POST /generate_stream            SSE, one ``data:{...}`` event per token, the last one
                                     carrying generated_text and (with details) the details
    POST /, POST /invocations        TGI's compat route: the body's "stream" flag picks one of
                                     the two above; the non-stream answer is wrapped in a list
    POST /v1/chat/completions        OpenAI-compatible, non-stream and stream (ends ``data: [DONE]``)

Things TGI does that surprise people, and that this stand-in therefore does too
    * Errors on *streaming* routes (overload, validation, generation) arrive as an SSE
      event inside an HTTP 200 response, not as an HTTP status: TGI only checks the
      concurrency limit after the response has started. ``InferenceClient`` raises the
      matching ``OverloadedError``/``ValidationError``/``GenerationError`` while you iterate.
      Non-streaming routes use HTTP statuses (422 validation, 424 generation,
      429 overloaded, 500 incomplete generation). ``stream_errors_as_status=True`` makes
      streams use the HTTP statuses too, for code that wants to test that path.
    * On /v1/chat/completions with stream=true, errors are OpenAI-style events,
      ``data:{"error":{"message":...,"http_status_code":...}}``, which ``InferenceClient``
      raises as ``UnknownError``.
    * The compat route ``POST /`` (the one ``InferenceClient.text_generation`` uses when
      given a URL) defaults ``return_full_text`` to true for a "text-generation" model, so
      the prompt is echoed before the answer unless the caller passes
      ``return_full_text=False``. Set ``compat_return_full_text=False`` to turn this off.
    * When generation stops on its own (not on max_new_tokens) the last token is a
      special end-of-sequence token (``"</s>"``, ``special: true``), counted in
      generated_tokens but not in generated_text; finish_reason is "eos_token"
      ("stop" in chat), otherwise "length" or "stop_sequence".

Tokenization is approximate: one token per whitespace-separated word of the input (and
of the rendered chat prompt). Generated tokens are words with a leading space, like a
SentencePiece tokenizer produces mid-sentence; in chat, the first token has no leading
space, as chat templates end with a newline.

Generated text is deterministic. If the prompt holds numbered passages (lines starting
``[1] ...``, ``[2] ...``) the answer quotes a few words of each of the first passages and
cites them, e.g. ``" Paris is the capital of France [1]. The Eiffel Tower ... [2]."``;
otherwise it repeats a fixed sentence. It is ``min(max_new_tokens, answer_tokens)`` words
long; ``answer_text()`` returns what /generate would answer, for assertions.

Capacity: at most ``max_concurrent_requests`` generation requests are in flight; one more
is refused at once with "Model is overloaded" (HTTP 429 when not streaming), as TGI
does. A request holds its slot until it completes, fails, or its client disconnects.
Tokens are paced at ``tokens_per_second`` after ``first_token_latency`` (0 = no wait).

Fault injection, at runtime over HTTP so that tests in another process can drive it:
    POST /_standin/faults {"mode": M, "count": N?, "delay_s": S?, "after_tokens": K?}
        M is one of:
        none             normal service
        error_500        HTTP 500 {"error":"Incomplete generation","error_type":"incomplete_generation"}
                         (also on streams: it stands for a failure before the stream starts)
        slow             waits delay_s (default 2.0) more before the first token
        hang             sends nothing, holding the slot, until the client disconnects
        midstream_error  streams after_tokens tokens (default 3), then the SSE event
                         {"error":"Request failed during generation: ...","error_type":"generation"};
                         non-streaming requests get HTTP 424 with that body after the same time
        down             /health answers 503; generation requests get HTTP 503
                         {"error":"Model is not available ...","error_type":"unavailable"},
                         as a load balancer in front of a dead TGI would
        overloaded       refuses as if at capacity ("Model is overloaded", 429 when not streaming)
        count: apply to the next N generation requests, then revert to "none"
        (health checks see "down" without using it up); absent or null: until replaced.
        delay_s: for slow, the extra wait; for error_500/down/overloaded, a wait before the
        error is sent.
    GET  /_standin/faults          the fault in force
    GET  /_standin/stats           counters: requests, in_flight, max_in_flight_seen,
                                   rejected_429, completed, cancelled (client went away
                                   before the answer was complete), failed,
                                   validation_errors, faults_applied, tokens_generated
    POST /_standin/reset           zero the counters and clear the fault
    GET|POST /_standin/config      read or change the settings below at runtime

In process: ``TGIStandIn(max_concurrent_requests=4, tokens_per_second=50).start()``
serves on a background thread with its own event loop (127.0.0.1, a free port when
port=0); ``.url``, ``.stop()``, ``with TGIStandIn() as standin: ...``, and
``set_fault()``, ``stats()``, ``reset()``, ``configure()`` for the same controls.
From a shell: ``python -m tests.support.tgi_standin --port 8080 --max-concurrent-requests 4
--tokens-per-second 50`` serves in the foreground (``--help`` lists every flag).

The HTTP server is uvicorn (h11) running a small ASGI app: HTTP/1.1 keep-alive, chunked
SSE streams, and hundreds of concurrent streams on one event loop.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

TGI_VERSION = "3.3.6"
COMPUTE_TYPE = "gpu+optimized"
FAULT_MODES = ("none", "error_500", "slow", "hang", "midstream_error", "down", "overloaded")
DEFAULT_SLOW_DELAY_S = 2.0
DEFAULT_MIDSTREAM_AFTER_TOKENS = 3
EOS_TOKEN_ID = 2
EOS_TOKEN_TEXT = "</s>"
QUOTE_WORDS = 6  # words quoted from a passage before citing it
CITED_PASSAGES = 3  # the answer quotes the first this-many passages, then cycles
FALLBACK_ANSWER = (
    "The stand-in found no numbered passages in the prompt, so it answers with this fixed sentence."
)

_PASSAGE_RE = re.compile(r"^[ \t]*\[(\d+)\][ \t]*(\S.*)$", re.MULTILINE)
_TRAILING_PUNCTUATION = ".,;:!?"

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass
class StandInConfig:
    """What the stand-in reports in /info, what it accepts, and how fast it generates."""

    model_id: str = "sluice/tgi-standin"
    max_concurrent_requests: int = 128
    max_input_tokens: int = 4095
    max_total_tokens: int = 4096
    max_best_of: int = 2
    max_stop_sequences: int = 4
    max_client_batch_size: int = 4
    max_batch_total_tokens: int = 262144
    validation_workers: int = 2
    tokens_per_second: float = 0.0
    first_token_latency: float = 0.0
    answer_tokens: int = 32
    compat_return_full_text: bool = True
    stream_errors_as_status: bool = False
    sse_keepalive_s: float = 15.0
    version: str = TGI_VERSION


_CONFIG_TYPES: dict[str, Callable[[Any], Any]] = {}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


for _field in dataclasses.fields(StandInConfig):
    _CONFIG_TYPES[_field.name] = {"int": int, "float": float, "bool": _as_bool, "str": str}[str(_field.type)]


def _config_update(config: StandInConfig, changes: dict[str, Any]) -> StandInConfig:
    unknown = sorted(set(changes) - set(_CONFIG_TYPES))
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    values = {name: _CONFIG_TYPES[name](value) for name, value in changes.items()}
    return dataclasses.replace(config, **values)


@dataclasses.dataclass
class Fault:
    """The injected fault in force; count is how many generation requests it has left."""

    mode: str = "none"
    count: int | None = None
    delay_s: float | None = None
    after_tokens: int = DEFAULT_MIDSTREAM_AFTER_TOKENS

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fault_parse(payload: Any) -> Fault:
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(payload) - {"mode", "count", "delay_s", "after_tokens"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    mode = payload.get("mode", "none")
    if mode not in FAULT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}; got {mode!r}")
    count = payload.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer or null")
    delay_s = payload.get("delay_s")
    if delay_s is not None and (isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0):
        raise ValueError("delay_s must be a non-negative number or null")
    after_tokens = payload.get("after_tokens", DEFAULT_MIDSTREAM_AFTER_TOKENS)
    if isinstance(after_tokens, bool) or not isinstance(after_tokens, int) or after_tokens < 0:
        raise ValueError("after_tokens must be a non-negative integer")
    return Fault(
        mode=mode,
        count=None if mode == "none" else count,
        delay_s=None if delay_s is None else float(delay_s),
        after_tokens=after_tokens,
    )


_COUNTERS = (
    "requests",
    "completed",
    "cancelled",
    "rejected_429",
    "failed",
    "validation_errors",
    "faults_applied",
    "tokens_generated",
)


class _State:
    """Settings, fault and counters, shared by the event loop and the controlling thread."""

    def __init__(self, config: StandInConfig) -> None:
        self._lock = threading.Lock()
        self.config = config
        self.fault = Fault()
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.in_flight = 0
        self.max_in_flight_seen = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def configure(self, changes: dict[str, Any]) -> StandInConfig:
        with self._lock:
            self.config = _config_update(self.config, changes)
            return self.config

    def fault_set(self, fault: Fault) -> Fault:
        with self._lock:
            self.fault = fault
            return dataclasses.replace(fault)

    def fault_peek(self) -> Fault:
        with self._lock:
            return dataclasses.replace(self.fault)

    def fault_take(self) -> Fault:
        """The fault for one generation request, using up one of its count."""
        with self._lock:
            fault = self.fault
            if fault.mode == "none":
                return dataclasses.replace(fault)
            self.counters["faults_applied"] += 1
            taken = dataclasses.replace(fault)
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.fault = Fault()
            return taken

    def slot_acquire(self) -> bool:
        with self._lock:
            if self.in_flight >= self.config.max_concurrent_requests:
                return False
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
            return True

    def slot_release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counters,
                "in_flight": self.in_flight,
                "max_in_flight_seen": self.max_in_flight_seen,
                "fault": self.fault.as_dict(),
            }

    def reset(self) -> None:
        with self._lock:
            self.counters = dict.fromkeys(_COUNTERS, 0)
            self.max_in_flight_seen = self.in_flight
            self.fault = Fault()


# --------------------------------------------------------------------------- text


def _token_id(text: str) -> int:
    # Stable ids clear of the special ones at the bottom of a typical vocabulary.
    return 3 + zlib.crc32(text.encode()) % 31997


def _token_logprob(text: str) -> float:
    return -round(0.01 + (zlib.crc32(text.encode()[::-1]) % 1000) / 400, 4)


def _token(text: str, *, special: bool = False) -> dict[str, Any]:
    if special:
        return {"id": EOS_TOKEN_ID, "text": text, "logprob": -0.0001, "special": True}
    return {"id": _token_id(text), "text": text, "logprob": _token_logprob(text), "special": False}


def input_token_count(text: str) -> int:
    """The stand-in's approximate tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _passages(prompt: str) -> list[tuple[str, list[str]]]:
    seen: dict[str, list[str]] = {}
    for match in _PASSAGE_RE.finditer(prompt):
        number, text = match.group(1), match.group(2)
        words = text.split()
        if number not in seen and words:
            seen[number] = words
    return list(seen.items())


def _answer_words(prompt: str) -> Iterator[str]:
    passages = _passages(prompt)[:CITED_PASSAGES]
    if not passages:
        while True:
            yield from FALLBACK_ANSWER.split()
    # Each round quotes the next few words of every passage, starting a passage over
    # once it is used up, and cites it after the quote.
    offsets = [0] * len(passages)
    while True:
        for i, (number, words) in enumerate(passages):
            if offsets[i] >= len(words):
                offsets[i] = 0
            quote = words[offsets[i] : offsets[i] + QUOTE_WORDS]
            offsets[i] += len(quote)
            quote[-1] = quote[-1].rstrip(_TRAILING_PUNCTUATION) or quote[-1]
            yield from quote
            yield f"[{number}]."


def answer_text(prompt: str, *, max_new_tokens: int, answer_tokens: int = StandInConfig.answer_tokens) -> str:
    """The generated_text /generate returns for this prompt (return_full_text off, no stop)."""
    words = _answer_words(prompt)
    return "".join(" " + next(words) for _ in range(max(0, min(max_new_tokens, answer_tokens))))


@dataclasses.dataclass
class _Plan:
    tokens: list[dict[str, Any]]
    finish_reason: str
    text: str
    seed: int | None


def _plan(
    prompt: str,
    *,
    max_new_tokens: int,
    answer_tokens: int,
    stop: list[str],
    seed: int | None,
    chat: bool,
) -> _Plan:
    words = _answer_words(prompt)
    tokens: list[dict[str, Any]] = []
    text = ""
    finish_reason = "length"
    for i in range(max_new_tokens):
        if i == answer_tokens:
            tokens.append(_token(EOS_TOKEN_TEXT, special=True))
            finish_reason = "eos_token"
            break
        word = next(words)
        piece = word if chat and i == 0 else " " + word
        tokens.append(_token(piece))
        text += piece
        if any(s and s in text for s in stop):
            finish_reason = "stop_sequence"
            break
    return _Plan(tokens=tokens, finish_reason=finish_reason, text=text, seed=seed)


def _chat_prompt(messages: list[Any]) -> str:
    """A generic chat template; only its word count and passages matter here."""
    lines = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(
                part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
            )
        lines.append(f"<|{message.get('role', 'user')}|>\n{content or ''}")
    lines.append("<|assistant|>\n")
    return "\n".join(lines)


# --------------------------------------------------------------------------- validation


class _ValidationError(Exception):
    pass


def _number(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _ValidationError(f"`{name}` must be a number")
    return value


def _validate(
    config: StandInConfig, inputs: str, params: dict[str, Any], *, stream: bool
) -> tuple[int, int]:
    """TGI's checks and messages (router/src/validation.rs); returns (input, max_new) tokens."""
    best_of = _number(params, "best_of")
    if best_of is not None:
        if stream and best_of != 1:
            raise _ValidationError("`best_of` != 1 is not allowed for this endpoint")
        if best_of <= 0 or best_of > config.max_best_of:
            raise _ValidationError(f"`best_of` must be > 0 and <= {config.max_best_of}. Given: {best_of}")
    if stream and params.get("decoder_input_details"):
        raise _ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
    temperature = _number(params, "temperature")
    if temperature is not None and temperature <= 0:
        raise _ValidationError("`temperature` must be strictly positive")
    repetition_penalty = _number(params, "repetition_penalty")
    if repetition_penalty is not None and repetition_penalty <= 0:
        raise _ValidationError("`repetition_penalty` must be strictly positive")
    top_p = _number(params, "top_p")
    if top_p is not None and not 0 < top_p < 1:
        raise _ValidationError("`top_p` must be > 0.0 and < 1.0")
    typical_p = _number(params, "typical_p")
    if typical_p is not None and not 0 < typical_p < 1:
        raise _ValidationError("`typical_p` must be > 0.0 and < 1.0")
    top_k = _number(params, "top_k")
    if top_k is not None and top_k <= 0:
        raise _ValidationError("`top_k` must be strictly positive")
    max_new_tokens = _number(params, "max_new_tokens")
    if max_new_tokens is not None and max_new_tokens <= 0:
        raise _ValidationError("`max_new_tokens` must be strictly positive")
    stop = params.get("stop") or []
    if len(stop) > config.max_stop_sequences:
        raise _ValidationError(
            f"`stop` supports up to {config.max_stop_sequences} stop sequences. Given: {len(stop)}"
        )
    if not inputs:
        raise _ValidationError("`inputs` cannot be empty")
    input_tokens = input_token_count(inputs)
    truncate = _number(params, "truncate")
    if truncate is not None:
        if truncate <= 0 or truncate > config.max_input_tokens:
            raise _ValidationError(
                f"`truncate` must be strictly positive and less than {config.max_input_tokens}. Given: {truncate}"
            )
        input_tokens = min(input_tokens, int(truncate))
    if input_tokens > config.max_input_tokens:
        raise _ValidationError(
            f"`inputs` must have less than {config.max_input_tokens} tokens. Given: {input_tokens}"
        )
    if max_new_tokens is None:
        # TGI 2+: without max_new_tokens, generation may fill the rest of the window.
        max_new_tokens = max(1, config.max_total_tokens - input_tokens)
    max_new_tokens = int(max_new_tokens)
    if input_tokens + max_new_tokens > config.max_total_tokens:
        raise _ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {config.max_total_tokens}. "
            f"Given: {input_tokens} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    return input_tokens, max_new_tokens


# --------------------------------------------------------------------------- HTTP


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _respond_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(send, status, _json_bytes(payload), headers=headers)


async def _respond_text(send: Send, status: int, text: str) -> None:
    await _respond(send, status, text.encode(), content_type=b"text/plain; charset=utf-8")


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _sse(payload: Any) -> bytes:
    # axum's Event::json_data writes "data:" with no space, then compact JSON.
    return b"data:" + _json_bytes(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b":\n\n"


@dataclasses.dataclass
class _Job:
    """One generation request, whichever route it came through."""

    api: str  # "generate" or "chat"
    prompt: str
    params: dict[str, Any]
    stream: bool
    wrap_in_list: bool = False
    chat_include_usage: bool = False
    chat_logprobs: bool = False


class _Cancelled(Exception):
    """The client went away before the answer was complete."""


class _StandInApp:
    """The ASGI application; one instance per server."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self._disconnect_events: set[asyncio.Event] = set()
        self._closing = False

    def close(self) -> None:
        """Release every waiting request (called on the event loop at shutdown)."""
        self._closing = True
        for event in list(self._disconnect_events):
            event.set()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        routes = _ROUTES.get(path)
        if routes is None:
            await _respond(send, 404)
            return
        handler = routes.get(method)
        if handler is None:
            await _respond(send, 405)
            return
        await handler(self, receive, send)

    # ---------------------------------------------------------------- plain routes

    async def health(self, receive: Receive, send: Send) -> None:
        if self.state.fault_peek().mode == "down":
            await _respond_json(send, 503, {"error": "unhealthy", "error_type": "healthcheck"})
        else:
            await _respond(send, 200)

    async def info(self, receive: Receive, send: Send) -> None:
        await _respond_json(send, 200, _info(self.state.config))

    async def models(self, receive: Receive, send: Send) -> None:
        model_id = self.state.config.model_id
        await _respond_json(
            send,
            200,
            {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": model_id}]},
        )

    async def metrics(self, receive: Receive, send: Send) -> None:
        stats = self.state.stats()
        lines = [
            "# TYPE tgi_request_count counter",
            f"tgi_request_count {stats['requests']}",
            "# TYPE tgi_request_success counter",
            f"tgi_request_success {stats['completed']}",
            "# TYPE tgi_request_failure counter",
            f'tgi_request_failure{{err="overloaded"}} {stats["rejected_429"]}',
            f'tgi_request_failure{{err="validation"}} {stats["validation_errors"]}',
            f'tgi_request_failure{{err="generation"}} {stats["failed"]}',
            "# TYPE tgi_batch_current_size gauge",
            f"tgi_batch_current_size {stats['in_flight']}",
            "# TYPE tgi_queue_size gauge",
            "tgi_queue_size 0",
            "# TYPE tgi_request_generated_tokens_sum counter",
            f"tgi_request_generated_tokens_sum {stats['tokens_generated']}",
        ]
        await _respond(send, 200, ("\n".join(lines) + "\n").encode(), content_type=b"text/plain; version=0.0.4")

    # ---------------------------------------------------------------- control routes

    async def faults_get(self, receive: Receive, send: Send) -> None:
        await _respond_json(send, 200, self.state.fault_peek().as_dict())

    async def faults_set(self, receive: Receive, send: Send) -> None:
        payload = await self._read_json(receive, send)
        if payload is _NO_BODY:
            return
        try:
            fault = _fault_parse(payload)
        except ValueError as error:
            await _respond_json(send, 400, {"error": str(error), "error_type": "standin"})
            return
        await _respond_json(send, 200, self.state.fault_set(fault).as_dict())

    async def stats(self, receive: Receive, send: Send) -> None:
        await _respond_json(send, 200, self.state.stats())

    async def reset(self, receive: Receive, send: Send) -> None:
        await _read_body(receive)
        self.state.reset()
        await _respond_json(send, 200, self.state.stats())

    async def config_get(self, receive: Receive, send: Send) -> None:
        await _respond_json(send, 200, dataclasses.asdict(self.state.config))

    async def config_set(self, receive: Receive, send: Send) -> None:
        payload = await self._read_json(receive, send)
        if payload is _NO_BODY:
            return
        try:
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            config = self.state.configure(payload)
        except (TypeError, ValueError) as error:
            await _respond_json(send, 400, {"error": str(error), "error_type": "standin"})
            return
        await _respond_json(send, 200, dataclasses.asdict(config))

    async def _read_json(self, receive: Receive, send: Send) -> Any:
        body = await _read_body(receive)
        if body is None:
            return _NO_BODY
        try:
            return json.loads(body or b"null")
        except ValueError as error:
            # The wording axum's Json extractor uses for a body that is not JSON.
            await _respond_text(send, 400, f"Failed to parse the request body as JSON: {error}")
            return _NO_BODY

    # ---------------------------------------------------------------- generation routes

    async def generate(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=False, compat=False)

    async def generate_stream(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=True, compat=False)

    async def compat_generate(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=None, compat=True)

    async def _tgi_route(self, receive: Receive, send: Send, *, stream: bool | None, compat: bool) -> None:
        payload = await self._read_json(receive, send)
        if payload is _NO_BODY:
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), str):
            await _respond_text(
                send, 422, "Failed to deserialize the JSON body into the target type: missing field `inputs`"
            )
            return
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            await _respond_text(send, 422, "Failed to deserialize the JSON body into the target type: parameters")
            return
        params = dict(params)
        if compat:
            stream = bool(payload.get("stream", False))
            if params.get("return_full_text") is None:
                params["return_full_text"] = self.state.config.compat_return_full_text
        job = _Job(api="generate", prompt=payload["inputs"], params=params, stream=bool(stream), wrap_in_list=compat)
        await self._serve(job, receive, send)

    async def chat_completions(self, receive: Receive, send: Send) -> None:
        payload = await self._read_json(receive, send)
        if payload is _NO_BODY:
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            await _respond_text(
                send, 422, "Failed to deserialize the JSON body into the target type: missing field `messages`"
            )
            return
        temperature = payload.get("temperature")
        params: dict[str, Any] = {
            "max_new_tokens": payload.get("max_tokens", payload.get("max_completion_tokens")),
            "stop": payload.get("stop") or [],
            "seed": payload.get("seed"),
            "top_p": payload.get("top_p"),
            # TGI maps temperature 0 to greedy decoding rather than rejecting it.
            "temperature": temperature if temperature else None,
            "do_sample": temperature != 0,
            "details": True,
        }
        if isinstance(params["stop"], str):
            params["stop"] = [params["stop"]]
        stream_options = payload.get("stream_options") or {}
        job = _Job(
            api="chat",
            prompt=_chat_prompt(payload["messages"]),
            params=params,
            stream=bool(payload.get("stream", False)),
            chat_include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
            chat_logprobs=bool(payload.get("logprobs")),
        )
        await self._serve(job, receive, send)

    # ---------------------------------------------------------------- the generation pipeline

    async def _serve(self, job: _Job, receive: Receive, asgi_send: Send) -> None:
        state = self.state
        send = _TrackedSend(asgi_send)
        state.count("requests")
        fault = state.fault_take()
        if fault.mode in ("down", "error_500", "overloaded") and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.mode == "down":
            state.count("failed")
            await _respond_json(
                send,
                503,
                {"error": "Model is not available: the server is down", "error_type": "unavailable"},
            )
            return
        if fault.mode == "error_500":
            state.count("failed")
            await _respond_json(send, 500, {"error": "Incomplete generation", "error_type": "incomplete_generation"})
            return
        # TGI takes a concurrency permit before validating (infer/mod.rs), so an
        # over-capacity request is refused even when it is also invalid.
        if fault.mode == "overloaded" or not state.slot_acquire():
            state.count("rejected_429")
            await self._error(job, send, 429, "Model is overloaded", "overloaded")
            return
        disconnected = asyncio.Event()
        self._disconnect_events.add(disconnected)
        watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        try:
            if self._closing:
                disconnected.set()
            await self._serve_admitted(job, fault, send, disconnected)
        except _Cancelled:
            state.count("cancelled")
            if self._closing:
                await send.finish()
        finally:
            watcher.cancel()
            self._disconnect_events.discard(disconnected)
            state.slot_release()

    async def _serve_admitted(self, job: _Job, fault: Fault, send: Send, disconnected: asyncio.Event) -> None:
        config = self.state.config
        try:
            input_tokens, max_new_tokens = _validate(config, job.prompt, job.params, stream=job.stream)
        except _ValidationError as error:
            self.state.count("validation_errors")
            await self._error(job, send, 422, f"Input validation error: {error}", "validation")
            return
        if fault.mode == "hang":
            await disconnected.wait()
            raise _Cancelled
        seed = job.params.get("seed")
        if seed is None and job.params.get("do_sample"):
            seed = zlib.crc32(job.prompt.encode())
        plan = _plan(
            job.prompt,
            max_new_tokens=max_new_tokens,
            answer_tokens=config.answer_tokens,
            stop=list(job.params.get("stop") or []),
            seed=seed,
            chat=job.api == "chat",
        )
        first_delay = config.first_token_latency
        if fault.mode == "slow":
            first_delay += DEFAULT_SLOW_DELAY_S if fault.delay_s is None else fault.delay_s
        per_token = 1.0 / config.tokens_per_second if config.tokens_per_second > 0 else 0.0
        fail_after = fault.after_tokens if fault.mode == "midstream_error" else None
        if job.stream:
            await self._stream(job, plan, input_tokens, first_delay, per_token, fail_after, send, disconnected)
        else:
            await self._unary(job, plan, input_tokens, first_delay, per_token, fail_after, send, disconnected)

    async def _error(self, job: _Job, send: Send, status: int, message: str, error_type: str) -> None:
        if not job.stream or self.state.config.stream_errors_as_status:
            await _respond_json(send, status, {"error": message, "error_type": error_type})
            return
        await self._stream_start(job, send)
        await self._stream_send(send, self._stream_error_event(job, status, message, error_type))
        await self._stream_end(job, send)

    @staticmethod
    def _stream_error_event(job: _Job, status: int, message: str, error_type: str) -> dict[str, Any]:
        if job.api == "chat":
            return {"error": {"message": message, "http_status_code": status}}
        return {"error": message, "error_type": error_type}

    async def _unary(
        self,
        job: _Job,
        plan: _Plan,
        input_tokens: int,
        first_delay: float,
        per_token: float,
        fail_after: int | None,
        send: Send,
        disconnected: asyncio.Event,
    ) -> None:
        started = time.monotonic()
        emitted = len(plan.tokens) if fail_after is None else min(fail_after, len(plan.tokens))
        await _wait(first_delay + max(0, emitted - 1) * per_token, disconnected)
        self.state.count("tokens_generated", emitted)
        if fail_after is not None:
            self.state.count("failed")
            await _respond_json(send, 424, {"error": _GENERATION_ERROR, "error_type": "generation"})
            return
        elapsed = time.monotonic() - started
        headers = _timing_headers(job.prompt, input_tokens, len(plan.tokens), elapsed)
        if job.api == "chat":
            await _respond_json(send, 200, self._chat_completion(job, plan, input_tokens), headers)
        else:
            response = self._generate_response(job, plan, input_tokens)
            await _respond_json(send, 200, [response] if job.wrap_in_list else response, headers)
        self.state.count("completed")

    def _generate_response(self, job: _Job, plan: _Plan, input_tokens: int) -> dict[str, Any]:
        text = (job.prompt + plan.text) if job.params.get("return_full_text") else plan.text
        response: dict[str, Any] = {"generated_text": text}
        if job.params.get("details") or job.params.get("decoder_input_details"):
            prefill = []
            if job.params.get("decoder_input_details"):
                words = job.prompt.split()[-input_tokens:] if input_tokens else []
                # TGI gives the first prompt token no logprob: nothing precedes it.
                prefill = [
                    {
                        "id": _token_id(word),
                        "text": word if i == 0 else " " + word,
                        "logprob": None if i == 0 else _token_logprob(word),
                    }
                    for i, word in enumerate(words)
                ]
            response["details"] = {
                "finish_reason": plan.finish_reason,
                "generated_tokens": len(plan.tokens),
                "seed": plan.seed,
                "prefill": prefill,
                "tokens": plan.tokens,
            }
        return response

    def _chat_completion(self, job: _Job, plan: _Plan, input_tokens: int) -> dict[str, Any]:
        config = self.state.config
        logprobs = None
        if job.chat_logprobs:
            logprobs = {
                "content": [
                    {"token": t["text"], "logprob": t["logprob"], "top_logprobs": []}
                    for t in plan.tokens
                    if not t["special"]
                ]
            }
        return {
            "object": "chat.completion",
            "id": "",
            "created": int(time.time()),
            "model": config.model_id,
            "system_fingerprint": f"{config.version}-native",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": plan.text},
                    "logprobs": logprobs,
                    "finish_reason": _chat_finish_reason(plan.finish_reason),
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": len(plan.tokens),
                "total_tokens": input_tokens + len(plan.tokens),
            },
        }

    async def _stream_start(self, job: _Job, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-compute-type", COMPUTE_TYPE.encode()),
                    (b"x-compute-characters", str(len(job.prompt)).encode()),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )

    @staticmethod
    async def _stream_send(send: Send, payload: Any) -> None:
        body = payload if isinstance(payload, bytes) else _sse(payload)
        await send({"type": "http.response.body", "body": body, "more_body": True})

    @staticmethod
    async def _stream_end(job: _Job, send: Send) -> None:
        await send({"type": "http.response.body", "body": SSE_DONE if job.api == "chat" else b"", "more_body": False})

    async def _stream(
        self,
        job: _Job,
        plan: _Plan,
        input_tokens: int,
        first_delay: float,
        per_token: float,
        fail_after: int | None,
        send: Send,
        disconnected: asyncio.Event,
    ) -> None:
        config = self.state.config
        await self._stream_start(job, send)
        await _wait(first_delay, disconnected, keepalive=(send, config.sse_keepalive_s))
        first_at = time.monotonic()
        created = int(time.time())
        for index, token in enumerate(plan.tokens, start=1):
            if fail_after is not None and index > fail_after:
                self.state.count("failed")
                await self._stream_send(
                    send, self._stream_error_event(job, 424, _GENERATION_ERROR, "generation")
                )
                await self._stream_end(job, send)
                return
            if disconnected.is_set():
                raise _Cancelled
            last = index == len(plan.tokens)
            if job.api == "chat":
                event = self._chat_chunk(job, plan, token, created, last)
            else:
                event = {"index": index, "token": token, "generated_text": None, "details": None}
                if last:
                    event["generated_text"] = (
                        job.prompt + plan.text if job.params.get("return_full_text") else plan.text
                    )
                    if job.params.get("details"):
                        event["details"] = {
                            "finish_reason": plan.finish_reason,
                            "generated_tokens": len(plan.tokens),
                            "seed": plan.seed,
                            "input_length": input_tokens,
                        }
            await self._stream_send(send, event)
            self.state.count("tokens_generated")
            if not last:
                await _wait(first_at + index * per_token - time.monotonic(), disconnected)
        if job.api == "chat" and job.chat_include_usage:
            await self._stream_send(
                send,
                {
                    **self._chat_chunk_base(created),
                    "choices": [],
                    "usage": {
                        "prompt_tokens": input_tokens,
                        "completion_tokens": len(plan.tokens),
                        "total_tokens": input_tokens + len(plan.tokens),
                    },
                },
            )
        await self._stream_end(job, send)
        self.state.count("completed")

    def _chat_chunk_base(self, created: int) -> dict[str, Any]:
        config = self.state.config
        return {
            "object": "chat.completion.chunk",
            "id": "",
            "created": created,
            "model": config.model_id,
            "system_fingerprint": f"{config.version}-native",
        }

    def _chat_chunk(self, job: _Job, plan: _Plan, token: dict[str, Any], created: int, last: bool) -> dict[str, Any]:
        logprobs = None
        if job.chat_logprobs and not token["special"]:
            logprobs = {"content": [{"token": token["text"], "logprob": token["logprob"], "top_logprobs": []}]}
        return {
            **self._chat_chunk_base(created),
            "choices": [
                {
                    "index": 0,
                    # TGI sends no content for special tokens (the end-of-sequence one).
                    "delta": {"role": "assistant", "content": None if token["special"] else token["text"]},
                    "logprobs": logprobs,
                    "finish_reason": _chat_finish_reason(plan.finish_reason) if last else None,
                }
            ],
            "usage": None,
        }


class _TrackedSend:
    """The ASGI send, remembering how far the response got."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def finish(self) -> None:
        """End the response at shutdown (a no-op towards a client that has gone)."""
        if not self.started:
            await _respond_json(self, 503, {"error": "The stand-in is shutting down", "error_type": "unavailable"})
        elif not self.finished:
            await self({"type": "http.response.body", "body": b"", "more_body": False})


_NO_BODY = object()
_GENERATION_ERROR = "Request failed during generation: Server error: injected by the TGI stand-in"


def _chat_finish_reason(finish_reason: str) -> str:
    return "length" if finish_reason == "length" else "stop"


def _timing_headers(
    prompt: str, input_tokens: int, generated_tokens: int, elapsed_s: float
) -> list[tuple[bytes, bytes]]:
    elapsed_ms = int(elapsed_s * 1000)
    values = {
        "x-compute-type": COMPUTE_TYPE,
        "x-compute-time": f"{elapsed_s:.6f}",
        "x-compute-characters": str(len(prompt)),
        "x-total-time": str(elapsed_ms),
        "x-validation-time": "0",
        "x-queue-time": "0",
        "x-inference-time": str(elapsed_ms),
        "x-time-per-token": str(elapsed_ms // max(1, generated_tokens)),
        "x-prompt-tokens": str(input_tokens),
        "x-generated-tokens": str(generated_tokens),
    }
    return [(name.encode(), value.encode()) for name, value in values.items()]


def _info(config: StandInConfig) -> dict[str, Any]:
    return {
        # What TGI 2.x/3.x report.
        "model_id": config.model_id,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": config.max_concurrent_requests,
        "max_best_of": config.max_best_of,
        "max_stop_sequences": config.max_stop_sequences,
        "max_input_tokens": config.max_input_tokens,
        "max_total_tokens": config.max_total_tokens,
        "validation_workers": config.validation_workers,
        "max_client_batch_size": config.max_client_batch_size,
        "router": "text-generation-router",
        "version": config.version,
        "sha": None,
        "docker_label": None,
        # Fields TGI 1.x reported (and some clients still read).
        "model_dtype": "torch.float16",
        "model_device_type": "cuda",
        "max_input_length": config.max_input_tokens,
        "waiting_served_ratio": 0.3,
        "max_batch_total_tokens": config.max_batch_total_tokens,
        "max_waiting_tokens": 20,
        "max_batch_size": None,
    }


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    # Once the request body is read, the next ASGI message is the disconnect.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            return


async def _wait(
    seconds: float,
    disconnected: asyncio.Event,
    *,
    keepalive: tuple[Send, float] | None = None,
) -> None:
    """Sleep, raising _Cancelled as soon as the client goes away."""
    if disconnected.is_set():
        raise _Cancelled
    if seconds <= 0:
        # Yield anyway, so that a fast stream does not starve the others.
        await asyncio.sleep(0)
    elif seconds < 0.25:
        # Short waits are every token's; a plain sleep is far cheaper than wait_for, and
        # a disconnect is still noticed before the next token.
        await asyncio.sleep(seconds)
    else:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            step = min(remaining, keepalive[1]) if keepalive and keepalive[1] > 0 else remaining
            try:
                await asyncio.wait_for(disconnected.wait(), step)
            except asyncio.TimeoutError:
                if keepalive and deadline - time.monotonic() > 0:
                    await keepalive[0]({"type": "http.response.body", "body": SSE_KEEPALIVE, "more_body": True})
    if disconnected.is_set():
        raise _Cancelled


_Handler = Callable[[_StandInApp, Receive, Send], Awaitable[None]]
_ROUTES: dict[str, dict[str, _Handler]] = {
    "/health": {"GET": _StandInApp.health},
    "/ping": {"GET": _StandInApp.health},
    "/info": {"GET": _StandInApp.info},
    "/metrics": {"GET": _StandInApp.metrics},
    "/v1/models": {"GET": _StandInApp.models},
    "/": {"GET": _StandInApp.health, "POST": _StandInApp.compat_generate},
    "/invocations": {"POST": _StandInApp.compat_generate},
    "/generate": {"POST": _StandInApp.generate},
    "/generate_stream": {"POST": _StandInApp.generate_stream},
    "/v1/chat/completions": {"POST": _StandInApp.chat_completions},
    "/_standin/faults": {"GET": _StandInApp.faults_get, "POST": _StandInApp.faults_set},
    "/_standin/stats": {"GET": _StandInApp.stats},
    "/_standin/reset": {"POST": _StandInApp.reset},
    "/_standin/config": {"GET": _StandInApp.config_get, "POST": _StandInApp.config_set},
}


# --------------------------------------------------------------------------- server


_BACKLOG = 4096


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _uvicorn_config(app: _StandInApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        # Benchmarks reuse connections between requests; TGI (hyper) keeps them for long.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=1,
        backlog=_BACKLOG,
    )


class TGIStandIn:
    """The stand-in server, in process: ``with TGIStandIn(tokens_per_second=50) as tgi: tgi.url``.

    Keyword arguments are StandInConfig fields; ``start()`` serves on a background
    thread with its own event loop until ``stop()``.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        self.host = host
        self.port = port
        self._state = _State(_config_update(StandInConfig(), settings))
        self._app = _StandInApp(self._state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> StandInConfig:
        return self._state.config

    def start(self, *, timeout_s: float = 10.0) -> TGIStandIn:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already running")
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self._app))
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"tgi-standin:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError("the TGI stand-in failed to start") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"the TGI stand-in did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    def _run(self, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as error:  # surfaced by start()
            self._error = error

    def stop(self, *, timeout_s: float = 10.0) -> None:
        if self._thread is None or self._server is None:
            return
        # Release waiting requests first, so that each ends its response itself instead
        # of being cancelled (and logged as an error) when the loop shuts down.
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._app.close)
            except RuntimeError:
                pass  # the loop closed in between
            deadline = time.monotonic() + 1.0
            while self._state.in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout_s)
        self._thread = None
        self._server = None
        self._loop = None

    def __enter__(self) -> TGIStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # The same controls as the /_standin routes, for tests in this process.

    def set_fault(
        self,
        mode: str,
        *,
        count: int | None = None,
        delay_s: float | None = None,
        after_tokens: int = DEFAULT_MIDSTREAM_AFTER_TOKENS,
    ) -> dict[str, Any]:
        fault = _fault_parse({"mode": mode, "count": count, "delay_s": delay_s, "after_tokens": after_tokens})
        return self._state.fault_set(fault).as_dict()

    def clear_fault(self) -> None:
        self._state.fault_set(Fault())

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    def reset(self) -> None:
        self._state.reset()

    def configure(self, **changes: Any) -> StandInConfig:
        return self._state.configure(changes)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.tgi_standin",
        description="Serve a TGI stand-in (tests and benchmarks only) in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on start)")
    defaults = StandInConfig()
    for field in dataclasses.fields(StandInConfig):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if field.type == "bool":
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, dest=field.name, type=_CONFIG_TYPES[field.name], default=default)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = {field.name: getattr(args, field.name) for field in dataclasses.fields(StandInConfig)}
    state = _State(StandInConfig(**settings))
    app = _StandInApp(state)
    sock = _bind(args.host, args.port)
    # Listening before announcing the address: a caller that reads it and connects at
    # once is queued rather than refused while uvicorn starts.
    sock.listen(_BACKLOG)
    print(f"TGI stand-in listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
