"""ASGI plumbing shared by the routes (protocol.py) and the SSE streams (streaming.py):
message types, JSON bodies and responses, and a send that remembers how far a response
got, so that shutdown can end it cleanly."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def respond(send: Send, status: int, body: bytes = b"", *, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_json(send: Send, status: int, payload: Any) -> None:
    await respond(send, status, json_bytes(payload))


async def respond_text(send: Send, status: int, text: str) -> None:
    await respond(send, status, text.encode(), content_type=b"text/plain; charset=utf-8")


async def read_body(receive: Receive) -> bytes | None:
    """The request body; None when the client left before sending all of it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class TrackedSend:
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
            await respond_json(self, 503, {"error": "The stand-in is shutting down", "error_type": "unavailable"})
        elif not self.finished:
            await self({"type": "http.response.body", "body": b"", "more_body": False})
