"""The stand-in's settings, injected fault and counters: shared by the server's event loop
and the thread that controls it (tests call ``TGIStandIn.configure``/``set_fault``/
``stats`` from their own thread), so every change holds one lock.

Faults (``set_fault(mode, delay_s=..., after_tokens=...)``; in force until replaced):
    none             normal service
    error_500        HTTP 500 {"error":"Incomplete generation","error_type":"incomplete_generation"},
                     on streams too: it stands for a failure before the stream starts
    slow             waits delay_s (default 2.0) more before the first token
    hang             sends nothing, holding its slot, until the client disconnects
    midstream_error  streams after_tokens tokens (default 3), then TGI's generation error
                     event; non-streaming requests get HTTP 424 with that body after the
                     same time
    down             /health answers 503; generation requests get HTTP 503
                     {"error":"Model is not available ...","error_type":"unavailable"}, as a
                     load balancer in front of a dead TGI would
    overloaded       refused as if at capacity (see overload.py)

Settings (StandInConfig) are the ones callers set: the limits /info reports and
validation enforces, the pace and length of answers, and the keep-alive interval. Kept
though no caller changes it from 0: ``first_token_latency`` (prefill time, the one
latency ``tokens_per_second`` does not model; tests/generation pins it in its base
settings). Kept though Sluice never calls /health: the "down" fault's 503 there, so that
"down" is down on every route (TGI deployments probe /health).

Cut: settings only the cut parts read (max_best_of, max_stop_sequences,
max_client_batch_size, max_batch_total_tokens, validation_workers,
compat_return_full_text, stream_errors_as_status; model_id and version are constants
now); the HTTP control routes (``/_standin/...``) and the command line, as every caller
runs the stand-in in its own process and drives it through ``TGIStandIn``; a fault's
``count`` and the waits before errors other than "slow"'s, which no caller used; the
``faults_applied`` and ``failed`` counters, which none read.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .answers import DEFAULT_ANSWER_TOKENS
from .overload import Slots

FAULT_MODES = ("none", "error_500", "slow", "hang", "midstream_error", "down", "overloaded")
DEFAULT_MIDSTREAM_AFTER_TOKENS = 3
GENERATION_ERROR = "Request failed during generation: Server error: injected by the TGI stand-in"
COUNTERS = ("requests", "completed", "cancelled", "rejected_429", "validation_errors", "tokens_generated")


@dataclasses.dataclass
class StandInConfig:
    """What the stand-in reports in /info, what it accepts, and how fast it generates."""

    max_concurrent_requests: int = 128
    max_input_tokens: int = 4095
    max_total_tokens: int = 4096
    tokens_per_second: float = 0.0  # 0: as fast as the event loop goes
    first_token_latency: float = 0.0
    answer_tokens: int = DEFAULT_ANSWER_TOKENS
    sse_keepalive_s: float = 15.0


@dataclasses.dataclass(frozen=True)
class Fault:
    mode: str = "none"
    delay_s: float | None = None
    after_tokens: int = DEFAULT_MIDSTREAM_AFTER_TOKENS


def fault_make(mode: str, *, delay_s: float | None = None, after_tokens: int = DEFAULT_MIDSTREAM_AFTER_TOKENS) -> Fault:
    if mode not in FAULT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}; got {mode!r}")
    if delay_s is not None and (isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)) or delay_s < 0):
        raise ValueError("delay_s must be a non-negative number or None")
    if isinstance(after_tokens, bool) or not isinstance(after_tokens, int) or after_tokens < 0:
        raise ValueError("after_tokens must be a non-negative integer")
    return Fault(mode=mode, delay_s=None if delay_s is None else float(delay_s), after_tokens=after_tokens)


class State:
    def __init__(self, config: StandInConfig) -> None:
        self._lock = threading.RLock()
        self.config = config
        self.fault = Fault()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.slots = Slots(self._lock)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def configure(self, changes: dict[str, Any]) -> StandInConfig:
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(StandInConfig)})
        if unknown:
            raise TypeError(f"unknown TGI stand-in setting(s): {', '.join(unknown)}")
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)
            return self.config

    def fault_set(self, fault: Fault) -> None:
        with self._lock:
            self.fault = fault

    def stats(self) -> dict[str, Any]:
        with self._lock:
            slots = self.slots
            return {**self.counters, "in_flight": slots.in_flight, "max_in_flight_seen": slots.max_in_flight_seen}

    def reset(self) -> None:
        with self._lock:
            self.counters = dict.fromkeys(COUNTERS, 0)
            self.slots.max_in_flight_seen = self.slots.in_flight
            self.fault = Fault()
