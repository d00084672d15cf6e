"""Server-sent event streams: ``/generate_stream`` (and the compat route with
``"stream": true``, where Sluice's TGI backend reads) and ``/v1/chat/completions`` with
``"stream": true`` (where its OpenAI-compatible backend reads).

Framing as TGI's axum writes it: ``data:`` with no space, compact JSON, a blank line; a
keep-alive is the comment ``:``; chat streams end with ``data: [DONE]``, TGI's own do not.
Each token is sent as it is generated, at the pace overload.py sets.

Errors on a stream (overload, validation, a failure mid-generation) arrive as an event
inside an HTTP 200 response, not as an HTTP status: TGI only checks them after the
response has started. On TGI's routes the event is ``{"error": ..., "error_type": ...}``
(``InferenceClient`` raises ``OverloadedError``/``ValidationError``/``GenerationError``
from it while iterating); on the chat route it is OpenAI-style,
``{"error": {"message": ..., "http_status_code": ...}}`` (raised as ``UnknownError``).
Sluice's backends translate both, and the tests check they do.
"""
from __future__ import annotations

import asyncio
import functools
import time

from .answers import Plan, chat_chunk, generate_stream_event
from .asgi import Send, json_bytes
from .overload import Cancelled, Pace, wait
from .state import GENERATION_ERROR, State

SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b":\n\n"


def _sse(payload: object) -> bytes:
    return b"data:" + json_bytes(payload) + b"\n\n"


async def _start(send: Send) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _write(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _end(send: Send, *, chat: bool) -> None:
    await send({"type": "http.response.body", "body": SSE_DONE if chat else b"", "more_body": False})


async def _error_and_end(send: Send, *, chat: bool, status: int, message: str, error_type: str) -> None:
    if chat:
        event: dict[str, object] = {"error": {"message": message, "http_status_code": status}}
    else:
        event = {"error": message, "error_type": error_type}
    await _write(send, _sse(event))
    await _end(send, chat=chat)


async def stream_error(send: Send, *, chat: bool, status: int, message: str, error_type: str) -> None:
    """A whole stream that holds only an error event."""
    await _start(send)
    await _error_and_end(send, chat=chat, status=status, message=message, error_type=error_type)


async def stream_answer(
    send: Send,
    state: State,
    answer: Plan,
    *,
    chat: bool,
    prefix: str,
    details: bool,
    input_tokens: int,
    pace: Pace,
    fail_after: int | None,
    disconnected: asyncio.Event,
) -> None:
    """Stream ``answer`` token by token; with ``fail_after``, fail after that many tokens
    (the "midstream_error" fault). ``prefix`` and ``details`` as for generate_output."""
    await _start(send)
    keepalive = (functools.partial(_write, send, SSE_KEEPALIVE), state.config.sse_keepalive_s)
    await wait(pace.first_delay, disconnected, keepalive=keepalive)
    first_at = time.monotonic()
    created = int(time.time())
    for index in range(1, len(answer.tokens) + 1):
        if fail_after is not None and index > fail_after:
            await _error_and_end(send, chat=chat, status=424, message=GENERATION_ERROR, error_type="generation")
            return
        if disconnected.is_set():
            raise Cancelled
        if chat:
            event = chat_chunk(answer, index, created=created)
        else:
            event = generate_stream_event(answer, index, prefix=prefix, details=details, input_tokens=input_tokens)
        await _write(send, _sse(event))
        state.count("tokens_generated")
        if index < len(answer.tokens):
            await wait(first_at + index * pace.per_token - time.monotonic(), disconnected)
    await _end(send, chat=chat)
    state.count("completed")
