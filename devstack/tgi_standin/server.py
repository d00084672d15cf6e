"""The stand-in's HTTP server and its lifecycle: ``TGIStandIn``, what tests and bench use.

``TGIStandIn(max_concurrent_requests=4, tokens_per_second=50).start()`` serves on a
background thread with its own event loop (127.0.0.1, a free port when port=0) until
``stop()``; ``with TGIStandIn(...) as standin:`` does both. ``url`` and ``port`` say
where; ``configure()``, ``set_fault()``/``clear_fault()``, ``stats()`` and ``reset()``
drive it from the caller's thread.

The HTTP server is uvicorn (h11) running protocol.py's ASGI app: HTTP/1.1 keep-alive
(kept long, as TGI's hyper does, because benchmarks reuse connections), chunked SSE
streams, and hundreds of concurrent streams on one event loop. ``stop()`` first releases
waiting requests, so that each ends its own response rather than being cancelled (and
logged as an error) when the loop shuts down.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from .protocol import StandInApp
from .state import DEFAULT_MIDSTREAM_AFTER_TOKENS, Fault, StandInConfig, State, fault_make


class TGIStandIn:
    """The stand-in server, in process: ``with TGIStandIn(tokens_per_second=50) as tgi: tgi.url``.

    Keyword arguments are StandInConfig fields (an unknown one is a TypeError).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
        self.host = host
        self.port = port
        self._state = State(StandInConfig(**settings))
        self._app = StandInApp(self._state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout_s: float = 10.0) -> TGIStandIn:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http="h11",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=1,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
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
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._app.close)
            except RuntimeError:
                pass  # the loop closed in between
            deadline = time.monotonic() + 1.0
            while self._state.slots.in_flight and time.monotonic() < deadline:
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

    def configure(self, **changes: Any) -> StandInConfig:
        """Change StandInConfig fields at runtime; the next request sees them."""
        return self._state.configure(changes)

    def set_fault(
        self, mode: str, *, delay_s: float | None = None, after_tokens: int = DEFAULT_MIDSTREAM_AFTER_TOKENS
    ) -> None:
        """Inject a fault (state.py lists them) until replaced or cleared; ``delay_s`` is
        the "slow" fault's extra wait (default 2 s), ``after_tokens`` the
        tokens "midstream_error" sends before failing."""
        self._state.fault_set(fault_make(mode, delay_s=delay_s, after_tokens=after_tokens))

    def clear_fault(self) -> None:
        self._state.fault_set(Fault())

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset(): requests, completed, cancelled (the client went
        away first), rejected_429, validation_errors, tokens_generated; in_flight and
        max_in_flight_seen."""
        return self._state.stats()

    def reset(self) -> None:
        """Zero the counters and clear the fault."""
        self._state.reset()

