"""Backpressure toward the generation server, shared by every generate worker via Redis.

- ``CircuitBreaker``: opens after ``breaker_failures`` consecutive failures (429, 5xx,
  timeouts, refused connections); while open no request is sent and answers are extractive
  (``degraded_reason`` says so). After ``breaker_open_seconds`` one half-open probe is let
  through: its success closes the breaker, its failure re-opens it.
- ``GenerationSlots``: at most ``limit`` requests in flight toward the server (its own
  ``max_concurrent_requests`` from /info unless the policy sets a lower figure), of which
  batch requests may hold at most ``batch_generation_share``; the rest stays reserved for
  critical and interactive ones. Slots are leases (sorted-set members scored by expiry), so
  a killed worker's slot comes back by itself.

Both are small Lua scripts, atomic across processes and hosts. See docs/overload.md.
"""
import logging
import math
import time
import uuid

from apps.operations.metrics import counter, metric_inc
from workers.state import state_redis

logger = logging.getLogger(__name__)

BREAKER_KEY = "sluice:breaker:{name}"
SLOTS_KEY = "sluice:genslots:{name}:{group}"
LIMIT_KEY = "sluice:genslots:{name}:limit"
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

_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
if ARGV[6] == '1' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
if ARGV[6] == '1' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) end
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


class GenerationSlots:
    def __init__(self, *, name: str, limit: int, batch_share: float):
        self.name = name
        self.limit = max(1, limit)
        self.batch_limit = max(1, math.floor(self.limit * batch_share)) if batch_share > 0 else 0
        self.all_key = SLOTS_KEY.format(name=name, group="all")
        self.batch_key = SLOTS_KEY.format(name=name, group="batch")
        # For the web tier's wait estimates (workers/load.py readers).
        state_redis().set(LIMIT_KEY.format(name=name), f"{self.limit}:{self.batch_limit}", ex=300)

    def acquire(self, *, priority_class: str, lease_seconds: float, wait_until: float) -> str | None:
        """A slot token, waiting (polling) until ``wait_until`` (epoch seconds); None if none
        freed up in time."""
        token = uuid.uuid4().hex
        batch = "1" if priority_class == "batch" else "0"
        if batch == "1" and self.batch_limit == 0:
            return None
        redis = state_redis()
        delay = 0.005
        while True:
            now = time.time()
            if redis.eval(_ACQUIRE, 2, self.all_key, self.batch_key, now, token, now + lease_seconds,
                          self.limit, self.batch_limit, batch):
                return token
            if now + delay > wait_until:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def release(self, token: str) -> None:
        pipe = state_redis().pipeline(transaction=False)
        pipe.zrem(self.all_key, token)
        pipe.zrem(self.batch_key, token)
        pipe.execute()

    def in_use(self) -> int:
        redis = state_redis()
        redis.zremrangebyscore(self.all_key, "-inf", time.time())
        return redis.zcard(self.all_key)


def slots_limit(name: str) -> tuple[int, int] | None:
    """(limit, batch limit) last published by the generate workers, or None."""
    raw = state_redis().get(LIMIT_KEY.format(name=name))
    if not raw:
        return None
    limit, batch = raw.decode().split(":")
    return int(limit), int(batch)
