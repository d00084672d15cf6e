"""Capacity and pace: TGI's concurrency limit, and how long an answer takes.

Capacity. TGI's router holds ``max_concurrent_requests`` permits (``infer/mod.rs``); a
generation request that finds none is refused at once with "Model is overloaded" (HTTP
429 when not streaming, an event in an HTTP 200 stream otherwise; see protocol.py), not
queued. It takes the permit before validating, so an over-capacity request is refused
even when it is also invalid. A request holds its slot until it completes, fails, or its
client disconnects: Sluice's overload control sizes its own admission from /info's
``max_concurrent_requests`` and relies on exactly this. The "overloaded" fault refuses as
if every slot were taken. Within its permits TGI batches requests on the GPU; here each
admitted request simply runs at its own pace, so there is no queue to model.

Pace. The first token comes ``first_token_latency`` seconds (plus the "slow" fault's
delay) after admission, standing for prefill; then one token every
``1 / tokens_per_second`` seconds (0: no wait). While a stream waits for its first token,
TGI sends an SSE keep-alive comment every 15 s (``sse_keepalive_s``); kept because they
are what Sluice's first-token deadline must not be fooled by (tests check it is not).
Every wait ends early, with ``Cancelled``, when the client disconnects: that is how a
client frees its slot mid-stream, which Sluice's cancel path relies on.
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .asgi import Receive

if TYPE_CHECKING:
    from .state import Fault, StandInConfig

DEFAULT_SLOW_DELAY_S = 2.0  # the "slow" fault's extra wait when set_fault gives none


class Slots:
    """The generation requests in flight, against the configured limit."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock  # the stand-in's state lock, so that stats() is one snapshot
        self.in_flight = 0
        self.max_in_flight_seen = 0

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self.in_flight >= limit:
                return False
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1


class Cancelled(Exception):
    """The client went away before the answer was complete."""


async def watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    # Once the request body is read, the next ASGI message is the disconnect.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            return


@dataclasses.dataclass(frozen=True)
class Pace:
    first_delay: float  # seconds from admission to the first token
    per_token: float  # seconds between tokens

    @classmethod
    def of(cls, config: StandInConfig, fault: Fault) -> Pace:
        first_delay = config.first_token_latency
        if fault.mode == "slow":
            first_delay += DEFAULT_SLOW_DELAY_S if fault.delay_s is None else fault.delay_s
        per_token = 1.0 / config.tokens_per_second if config.tokens_per_second > 0 else 0.0
        return cls(first_delay=first_delay, per_token=per_token)


async def wait(
    seconds: float,
    disconnected: asyncio.Event,
    *,
    keepalive: tuple[Callable[[], Awaitable[None]], float] | None = None,
) -> None:
    """Sleep, raising Cancelled as soon as the client goes away; with ``keepalive``
    (send, interval), call send every interval seconds while waiting."""
    if disconnected.is_set():
        raise Cancelled
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
                    await keepalive[0]()
    if disconnected.is_set():
        raise Cancelled
