"""The circuit breaker toward the generation server, shared by every generate worker via
Redis (docs/overload.md).

``CircuitBreaker`` opens after ``breaker_failures`` consecutive failures (429, 5xx,
timeouts, refused connections); while open no request is sent and answers are extractive
(``degraded_reason`` says so). After ``breaker_open_seconds`` one half-open probe is let
through: its success closes the breaker, its failure re-opens it. Small Lua scripts,
atomic across processes and hosts.
"""
import logging
import time
import uuid

from apps.operations.metrics import counter, metric_inc
from workers.state import state_redis

logger = logging.getLogger(__name__)

BREAKER_KEY = "sluice:breaker:{name}"
STATES = ("closed", "half_open", "open")

BREAKER_TRANSITIONS = counter("sluice_breaker_transitions", "Circuit breaker state changes", labels=["backend", "to"])

# The probe is the request that holds the breaker's ``probe`` token: only its outcome moves
# a half-open breaker; answers of requests sent before the breaker opened (stragglers) do not.
_ALLOW = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return 'closed' end
local now = tonumber(ARGV[1])
if state == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
  if now < open_until then return 'open' end
end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if state == 'open' or now >= probe_until then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', ARGV[3], 'probe_until', now + tonumber(ARGV[2]))
  return 'probe'
end
return 'half_open'
"""

_FAILURE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures < tonumber(ARGV[3]) then return 'closed' end
elseif state ~= 'half_open' or redis.call('HGET', KEYS[1], 'probe') ~= ARGV[1] then
  return 'ignored'
end
redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tonumber(ARGV[2]) + tonumber(ARGV[4]), 'probe_until', 0)
redis.call('HDEL', KEYS[1], 'probe')
return 'opened'
"""

_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then
  redis.call('HSET', KEYS[1], 'failures', 0)
  return 'closed'
end
if state == 'half_open' and redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  return 'closed_now'
end
return 'ignored'
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'probe_until', 0)
  redis.call('HDEL', KEYS[1], 'probe')
end
return 1
"""

class CircuitBreaker:
    """``permit = breaker.allow()``; None means "do not call the server". Report the call's
    outcome with ``record_success(permit)`` / ``record_failure(permit, reason)``, or
    ``release(permit)`` when the request never reached the server (no slot, deadline), so a
    half-open probe that did not happen does not hold the breaker half-open."""

    def __init__(self, *, name: str, failures: int, open_seconds: float):
        self.name = name
        self.key = BREAKER_KEY.format(name=name)
        self.failures = failures
        self.open_seconds = open_seconds

    def allow(self) -> str | None:
        token = uuid.uuid4().hex
        verdict = state_redis().eval(_ALLOW, 1, self.key, time.time(), self.open_seconds, token).decode()
        if verdict == "probe":
            logger.info("generation breaker %s half-open: sending one probe request", self.name)
            metric_inc(BREAKER_TRANSITIONS, backend=self.name, to="half_open")
        return token if verdict in ("closed", "probe") else None

    def record_success(self, permit: str) -> None:
        if state_redis().eval(_SUCCESS, 1, self.key, permit).decode() == "closed_now":
            logger.info("generation breaker %s closed: the probe was answered", self.name)
            metric_inc(BREAKER_TRANSITIONS, backend=self.name, to="closed")

    def record_failure(self, permit: str, reason: str) -> None:
        result = state_redis().eval(_FAILURE, 1, self.key, permit, time.time(), self.failures,
                                    self.open_seconds).decode()
        if result == "opened":
            logger.warning("generation breaker %s opened after %s: answers are extractive for %.0fs",
                           self.name, reason, self.open_seconds)
            metric_inc(BREAKER_TRANSITIONS, backend=self.name, to="open")

    def release(self, permit: str) -> None:
        state_redis().eval(_RELEASE, 1, self.key, permit)


def breaker_reset(name: str) -> None:
    """Close the breaker of backend ``name`` (operators after a fix; tests between cases)."""
    state_redis().delete(BREAKER_KEY.format(name=name))


def breaker_state(name: str) -> str:
    """``closed``, ``open`` (cooling down) or ``half_open`` (a probe may go / is in flight)."""
    raw = state_redis().hmget(BREAKER_KEY.format(name=name), "state", "open_until")
    state = raw[0].decode() if raw[0] else "closed"
    if state == "open" and raw[1] and time.time() >= float(raw[1]):
        return "half_open"
    return state
