"""Request size limits, enforced at the ASGI layer before Django reads a byte of the body.

Django's ASGI handler spools the whole body (to a temporary file past
FILE_UPLOAD_MAX_MEMORY_SIZE) before any view or middleware runs, and DRF's JSON parser
reads the stream without checking ``DATA_UPLOAD_MAX_MEMORY_SIZE``; so without this an
endless upload fills the disk before the view's own checks run. Limits:

- multipart uploads: ``SLUICE_UPLOAD_MAX_REQUEST_BYTES``;
- every other body (JSON): ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``SLUICE_JSON_MAX_BYTES``).

A declared Content-Length over the limit gets 413 at once; a chunked body is counted as it
arrives, and past the limit the rest is read and dropped (up to ``DRAIN_MAX`` bytes more,
so that the client can read the 413 rather than a connection reset) before the 413.
"""
import json

from django.conf import settings

DRAIN_MAX = 16 * 1024 * 1024


def body_limit(scope) -> tuple[int, str]:
    content_type = b""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            content_type = value
            break
    if content_type.lower().startswith(b"multipart/"):
        return settings.SLUICE_UPLOAD_MAX_REQUEST_BYTES, "SLUICE_UPLOAD_MAX_REQUEST_BYTES"
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "SLUICE_JSON_MAX_BYTES"


async def _too_large(send, *, limit: int, setting: str) -> None:
    body = json.dumps({"error": {
        "code": "too_large",
        "message": f"the request body is larger than the {limit}-byte limit ({setting}); "
                   "send fewer or smaller documents per request",
    }}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """ASGI middleware around the Django application."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = body_limit(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    break
                if declared > limit:
                    return await _too_large(send, limit=limit, setting=setting)
                break

        received = 0
        exceeded = False
        started = False
        body_done = False

        async def limited_receive():
            nonlocal received, exceeded, body_done
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    exceeded = True  # Django sees a client that went away and answers nothing
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if exceeded and not started:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracked_send)
        if exceeded and not started:
            drained = 0
            while not body_done and drained < DRAIN_MAX:
                message = await receive()
                if message["type"] != "http.request":
                    break
                drained += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
            await _too_large(send, limit=limit, setting=setting)
