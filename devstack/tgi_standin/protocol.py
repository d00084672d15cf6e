"""TGI's HTTP protocol as the stand-in serves it: the routes, reading and validating
requests, non-streaming answers, and the error shapes. Modelled on TGI 3.x's router
(``router/src/server.rs``, ``validation.rs``).

Routes
    GET  /health                200, empty body; 503 {"error":"unhealthy","error_type":"healthcheck"}
                                under the "down" fault (kept: it is the route TGI's
                                deployments probe, docker/k8s/optional/tgi.yaml among them)
    GET  /info                  the limits Sluice reads (max_input_tokens, max_total_tokens,
                                max_concurrent_requests, model_id) and TGI's version
    POST /                      TGI's compat route, where ``InferenceClient.text_generation``
                                posts (Sluice's TGI backend): the body's "stream" flag picks
                                one of the two below; the non-stream answer comes in a list
    POST /generate              {"inputs": str, "parameters": {...}} -> {"generated_text", "details"?}
    POST /generate_stream       SSE, see streaming.py
    POST /v1/chat/completions   OpenAI-compatible, non-stream and stream (Sluice's openai backend)
    anything else               404, empty body (Sluice's openai backend probes ``/info`` beside
                                a non-root URL and must see a plain 404 there); 405 for a
                                known route and another method

``/generate`` and ``/generate_stream`` are kept though ``InferenceClient`` posts to ``/``:
they are TGI's own routes, the compat route is defined in terms of them, and the tests
speak to them over raw HTTP to measure the server itself.

Things TGI does that surprise people, which the stand-in therefore does too
    * The compat route defaults ``return_full_text`` to true for a text-generation model,
      so the prompt is echoed before the answer unless the caller passes
      ``return_full_text=False``, which Sluice's TGI backend does for that reason.
    * Non-streaming routes report errors as HTTP statuses: 422 validation, 424 generation,
      429 overloaded, 500 incomplete generation, with ``{"error", "error_type"}``;
      streaming ones as events in a 200 response (streaming.py).
    * Without ``max_new_tokens`` generation may fill the rest of the window (TGI 2+).

Validation keeps the checks a request from Sluice can fail, with TGI's messages: the
prompt over ``max_input_tokens``, prompt plus ``max_new_tokens`` over
``max_total_tokens``, a ``max_new_tokens`` that is not a positive integer. Cut: the checks
of sampling parameters (best_of, temperature, top_p/top_k/typical_p, repetition_penalty,
truncate, stop, decoder_input_details), which Sluice never sets; the routes ``/metrics``,
``/v1/models``, ``/ping``, ``GET /`` and ``/invocations``, which it never calls; TGI's
timing headers (``x-compute-time`` ...), which it never reads.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from . import streaming
from .answers import MODEL_ID, TGI_VERSION, Plan, chat_completion, chat_prompt, generate_output, input_token_count, plan
from .asgi import Receive, Send, TrackedSend, read_body, respond, respond_json, respond_text
from .overload import Cancelled, Pace, wait, watch_disconnect
from .state import GENERATION_ERROR, Fault, StandInConfig, State


@dataclasses.dataclass
class Job:
    """One generation request, whichever route it came through."""

    chat: bool
    prompt: str
    stream: bool
    max_new_tokens: Any = None
    details: bool = False
    return_full_text: bool = False
    wrap_in_list: bool = False  # the compat route's non-stream answer


class _ValidationError(Exception):
    pass


def _validate(config: StandInConfig, job: Job) -> tuple[int, int]:
    """TGI's checks and messages for what Sluice sends; returns (input, max_new) tokens."""
    max_new_tokens = job.max_new_tokens
    if max_new_tokens is not None and (
        isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0
    ):
        raise _ValidationError("`max_new_tokens` must be strictly positive")
    input_tokens = input_token_count(job.prompt)
    if input_tokens > config.max_input_tokens:
        raise _ValidationError(
            f"`inputs` must have less than {config.max_input_tokens} tokens. Given: {input_tokens}"
        )
    if max_new_tokens is None:
        max_new_tokens = max(1, config.max_total_tokens - input_tokens)
    if input_tokens + max_new_tokens > config.max_total_tokens:
        raise _ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {config.max_total_tokens}. "
            f"Given: {input_tokens} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    return input_tokens, max_new_tokens


async def _read_request(receive: Receive, send: Send, field: str, kind: type) -> dict[str, Any] | None:
    """The JSON object body with ``field`` of type ``kind``; None once the request has
    been answered with TGI's (axum's) error, or the client has gone."""
    body = await read_body(receive)
    if body is None:
        return None
    try:
        payload = json.loads(body or b"null")
    except ValueError as error:
        await respond_text(send, 400, f"Failed to parse the request body as JSON: {error}")
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get(field), kind):
        await respond_text(
            send, 422, f"Failed to deserialize the JSON body into the target type: missing field `{field}`"
        )
        return None
    return payload


class StandInApp:
    """The ASGI application; one instance per server."""

    def __init__(self, state: State) -> None:
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
        routes = _ROUTES.get(scope["path"])
        if routes is None:
            await respond(send, 404)
        elif scope["method"] not in routes:
            await respond(send, 405)
        else:
            await routes[scope["method"]](self, receive, send)

    # ---------------------------------------------------------------- plain routes

    async def health(self, receive: Receive, send: Send) -> None:
        if self.state.fault.mode == "down":
            await respond_json(send, 503, {"error": "unhealthy", "error_type": "healthcheck"})
        else:
            await respond(send, 200)

    async def info(self, receive: Receive, send: Send) -> None:
        config = self.state.config
        info = {
            "model_id": MODEL_ID,
            "max_concurrent_requests": config.max_concurrent_requests,
            "max_input_tokens": config.max_input_tokens,
            "max_total_tokens": config.max_total_tokens,
            "router": "text-generation-router",
            "version": TGI_VERSION,
        }
        await respond_json(send, 200, info)

    # ---------------------------------------------------------------- generation routes

    async def generate(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=False)

    async def generate_stream(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=True)

    async def compat_generate(self, receive: Receive, send: Send) -> None:
        await self._tgi_route(receive, send, stream=None)

    async def _tgi_route(self, receive: Receive, send: Send, *, stream: bool | None) -> None:
        """``stream`` None: the compat route, where the body says."""
        payload = await _read_request(receive, send, "inputs", str)
        if payload is None:
            return
        params = payload.get("parameters") or {}
        if not isinstance(params, dict):
            await respond_text(send, 422, "Failed to deserialize the JSON body into the target type: parameters")
            return
        compat = stream is None
        full_text = params.get("return_full_text")
        job = Job(
            chat=False,
            prompt=payload["inputs"],
            stream=bool(payload.get("stream", False)) if compat else stream,
            max_new_tokens=params.get("max_new_tokens"),
            details=bool(params.get("details")),
            return_full_text=compat if full_text is None else bool(full_text),
            wrap_in_list=compat,
        )
        await self._serve(job, receive, send)

    async def chat_completions(self, receive: Receive, send: Send) -> None:
        payload = await _read_request(receive, send, "messages", list)
        if payload is None:
            return
        job = Job(
            chat=True,
            prompt=chat_prompt(payload["messages"]),
            stream=bool(payload.get("stream", False)),
            max_new_tokens=payload.get("max_tokens"),
        )
        await self._serve(job, receive, send)

    # ---------------------------------------------------------------- the generation pipeline

    async def _serve(self, job: Job, receive: Receive, asgi_send: Send) -> None:
        state = self.state
        send = TrackedSend(asgi_send)
        state.count("requests")
        fault = state.fault
        if fault.mode == "down":
            body = {"error": "Model is not available: the server is down", "error_type": "unavailable"}
            await respond_json(send, 503, body)
            return
        if fault.mode == "error_500":
            await respond_json(send, 500, {"error": "Incomplete generation", "error_type": "incomplete_generation"})
            return
        # The concurrency permit comes before validation (overload.py).
        if fault.mode == "overloaded" or not state.slots.acquire(state.config.max_concurrent_requests):
            state.count("rejected_429")
            await self._error(job, send, 429, "Model is overloaded", "overloaded")
            return
        disconnected = asyncio.Event()
        self._disconnect_events.add(disconnected)
        watcher = asyncio.create_task(watch_disconnect(receive, disconnected))
        try:
            if self._closing:
                disconnected.set()
            await self._serve_admitted(job, fault, send, disconnected)
        except Cancelled:
            state.count("cancelled")
            if self._closing:
                await send.finish()
        finally:
            watcher.cancel()
            self._disconnect_events.discard(disconnected)
            state.slots.release()

    async def _serve_admitted(self, job: Job, fault: Fault, send: Send, disconnected: asyncio.Event) -> None:
        config = self.state.config
        try:
            input_tokens, max_new_tokens = _validate(config, job)
        except _ValidationError as error:
            self.state.count("validation_errors")
            await self._error(job, send, 422, f"Input validation error: {error}", "validation")
            return
        if fault.mode == "hang":
            await disconnected.wait()
            raise Cancelled
        answer = plan(job.prompt, max_new_tokens=max_new_tokens, answer_tokens=config.answer_tokens, chat=job.chat)
        pace = Pace.of(config, fault)
        fail_after = fault.after_tokens if fault.mode == "midstream_error" else None
        if job.stream:
            await streaming.stream_answer(
                send,
                self.state,
                answer,
                chat=job.chat,
                prefix=job.prompt if job.return_full_text else "",
                details=job.details,
                input_tokens=input_tokens,
                pace=pace,
                fail_after=fail_after,
                disconnected=disconnected,
            )
        else:
            await self._unary(job, answer, input_tokens, pace, fail_after, send, disconnected)

    async def _error(self, job: Job, send: Send, status: int, message: str, error_type: str) -> None:
        if job.stream:
            await streaming.stream_error(send, chat=job.chat, status=status, message=message, error_type=error_type)
        else:
            await respond_json(send, status, {"error": message, "error_type": error_type})

    async def _unary(
        self,
        job: Job,
        answer: Plan,
        input_tokens: int,
        pace: Pace,
        fail_after: int | None,
        send: Send,
        disconnected: asyncio.Event,
    ) -> None:
        emitted = len(answer.tokens) if fail_after is None else min(fail_after, len(answer.tokens))
        await wait(pace.first_delay + max(0, emitted - 1) * pace.per_token, disconnected)
        self.state.count("tokens_generated", emitted)
        if fail_after is not None:
            await respond_json(send, 424, {"error": GENERATION_ERROR, "error_type": "generation"})
            return
        if job.chat:
            await respond_json(send, 200, chat_completion(answer, input_tokens=input_tokens))
        else:
            prefix = job.prompt if job.return_full_text else ""
            output = generate_output(answer, prefix=prefix, details=job.details)
            await respond_json(send, 200, [output] if job.wrap_in_list else output)
        self.state.count("completed")


_Handler = Callable[[StandInApp, Receive, Send], Awaitable[None]]
_ROUTES: dict[str, dict[str, _Handler]] = {
    "/health": {"GET": StandInApp.health},
    "/info": {"GET": StandInApp.info},
    "/": {"POST": StandInApp.compat_generate},
    "/generate": {"POST": StandInApp.generate},
    "/generate_stream": {"POST": StandInApp.generate_stream},
    "/v1/chat/completions": {"POST": StandInApp.chat_completions},
}
