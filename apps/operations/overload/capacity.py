"""Generation slots: backpressure toward the generation server, shared by every generate
worker via Redis (docs/overload.md).

``GenerationSlots``: at most ``limit`` requests in flight toward the server (its own
``max_concurrent_requests`` from /info unless the policy sets a lower figure), of which
batch requests may hold at most ``batch_generation_share``; the rest stays reserved for
critical and interactive ones. Slots are leases (sorted-set members scored by expiry), so
a killed worker's slot comes back by itself. A small Lua script, atomic across processes
and hosts; the breaker is in breaker.py.
"""
import math
import time
import uuid

from workers.state import state_redis

SLOTS_KEY = "sluice:genslots:{name}:{group}"
LIMIT_KEY = "sluice:genslots:{name}:limit"

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
