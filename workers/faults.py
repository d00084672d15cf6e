"""Fault points: named places where a test or a fault drill can make the code fail for
real, without patching it (docs/operations.md, "Failure modes").

Off unless ``SLUICE_FAULT_INJECTION`` is on (the test stack turns it on; production never
should). Then ``fault_point(name, **context)`` raises ``InjectedFault`` while the state
Redis holds ``sluice:fault:<name>``: a JSON object whose entries must all equal the
context's (``{}`` matches every call), e.g. ``{"document_id": 42}``. Arm one with
``fault_arm``; it stays armed until ``fault_disarm`` or its TTL.
"""
import json

from django.conf import settings

from .state import state_redis

KEY = "sluice:fault:{name}"


class InjectedFault(RuntimeError):
    """Raised by an armed fault point."""


def fault_point(name: str, **context) -> None:
    if not settings.SLUICE_FAULT_INJECTION:
        return
    raw = state_redis().get(KEY.format(name=name))
    if raw is None:
        return
    match = json.loads(raw)
    if all(context.get(key) == value for key, value in match.items()):
        raise InjectedFault(f"fault injected at {name} ({', '.join(f'{k}={v}' for k, v in context.items())})")


def fault_arm(name: str, *, ttl: int = 600, **match) -> None:
    state_redis().set(KEY.format(name=name), json.dumps(match), ex=ttl)


def fault_disarm(name: str) -> None:
    state_redis().delete(KEY.format(name=name))
