"""Fault points: named places where a test or a fault drill makes the code fail for real,
without patching it (docs/operations.md, "Failure modes").

Off unless ``SLUICE_FAULT_INJECTION`` is on (the test stack turns it on; production
refuses it). Then ``fault_point(name, **context)`` acts while the state Redis holds
``sluice:fault:<name>``: ``{"match": {...}, "action": ...}``, where every ``match`` entry
must equal the context's (``{}`` matches every call). Actions:

- ``raise``: ``InjectedFault`` (an unexpected error);
- ``transient``: ``redis.ConnectionError`` (what a part that is down raises);
- ``kill``: SIGKILL of the calling process (a worker that dies mid-task).

Each firing is counted in ``sluice:fault-hits:<name>``. Arm with ``fault_arm``; a fault
stays armed until ``fault_disarm`` or its TTL.
"""
import json
import os
import signal

import redis
from django.conf import settings

from .state import state_redis

KEY = "sluice:fault:{name}"
HITS_KEY = "sluice:fault-hits:{name}"
ACTIONS = ("raise", "transient", "kill")


class InjectedFault(RuntimeError):
    """Raised by an armed ``raise`` fault point."""


def fault_point(name: str, **context) -> None:
    if not settings.SLUICE_FAULT_INJECTION:
        return
    raw = state_redis().get(KEY.format(name=name))
    if raw is None:
        return
    fault = json.loads(raw)
    if not all(context.get(key) == value for key, value in fault["match"].items()):
        return
    state_redis().incr(HITS_KEY.format(name=name))
    where = f"{name} ({', '.join(f'{k}={v}' for k, v in context.items())})"
    if fault["action"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault["action"] == "transient":
        raise redis.ConnectionError(f"fault injected at {where}: connection lost")
    raise InjectedFault(f"fault injected at {where}")


def fault_arm(name: str, *, action: str = "raise", ttl: int = 600, **match) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown fault action {action!r}; one of {', '.join(ACTIONS)}")
    pipe = state_redis().pipeline()
    pipe.set(KEY.format(name=name), json.dumps({"match": match, "action": action}), ex=ttl)
    pipe.delete(HITS_KEY.format(name=name))
    pipe.execute()


def fault_disarm(name: str) -> None:
    state_redis().delete(KEY.format(name=name))


def fault_hits(name: str) -> int:
    return int(state_redis().get(HITS_KEY.format(name=name)) or 0)
