"""Read-your-writes by LSN (docs/replicas.md, "Read-your-writes"): a write to data that
replicas serve calls ``write_mark(scope=...)`` inside its transaction (``collection:<id>``).
That pins the scope to the primary while the commit is in flight, and after the commit
stores the primary's ``pg_current_wal_lsn()`` as the scope's token (in the state Redis,
the highest one wins). A read of the scope (``written_lsn``) may use only replicas whose
replay LSN has reached the token. A pin whose commit never reported (a worker killed
between commit and token) expires after ``WRITE_PIN_SECONDS``: the time-based fallback.
"""
import functools
import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from workers.state import state_redis

from .connections import PRIMARY, query_one

logger = logging.getLogger(__name__)

# Seconds a write's scope stays pinned to the primary when its commit never reports
# its LSN (the writer died between commit and token): the time-based fallback.
WRITE_PIN_SECONDS = 30
# Seconds a scope's write token is kept. A replica that passes the lag check has replayed
# everything older than SLUICE_REPLICA_MAX_LAG_SECONDS, so a token much older is moot.
WRITE_TOKEN_SECONDS = 600
_KEY = "sluice:rw"

# Pin a scope to the primary while a write's commit is in flight (Redis server time, so
# hosts' clocks do not matter); expired pins are swept.
_PIN_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
"""
# After the commit: keep the highest LSN (fixed-width hex compares as text), drop the pin.
_COMMITTED_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (not current) or ARGV[1] > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[3])
"""
# For a read: the highest token of its scopes, and how many live pins they have.
_READ_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local best = ''
local pins = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v > best then best = v end
  pins = pins + redis.call('ZCOUNT', KEYS[n + i], now, '+inf')
end
return {best, pins}
"""


@functools.cache
def _scripts() -> dict:
    redis = state_redis()
    return {name: redis.register_script(source) for name, source in
            (("pin", _PIN_SCRIPT), ("committed", _COMMITTED_SCRIPT), ("read", _READ_SCRIPT))}


def _token_key(scope: str) -> str:
    return f"{_KEY}:{scope}:lsn"


def _pins_key(scope: str) -> str:
    return f"{_KEY}:{scope}:pins"


def write_mark(*, scope: str, using: str = PRIMARY) -> None:
    """Call inside the transaction that writes what replica reads of ``scope`` return:
    once it commits, reads of ``scope`` use only replicas that replayed it."""
    if not settings.SLUICE_REPLICA_ALIASES:
        return
    pin = uuid.uuid4().hex
    try:
        _scripts()["pin"](keys=[_pins_key(scope)], args=[pin, WRITE_PIN_SECONDS])
    except Exception as exc:
        logger.warning("read-your-writes: cannot pin %s to the primary: %s", scope, exc)
    transaction.on_commit(lambda: _write_committed(scope=scope, pin=pin, using=using), using=using)


def _write_committed(*, scope: str, pin: str, using: str) -> None:
    try:
        (lsn,) = query_one(using, "SELECT (pg_current_wal_lsn() - '0/0')::bigint")
        _scripts()["committed"](keys=[_token_key(scope), _pins_key(scope)],
                                args=[f"{lsn:016x}", WRITE_TOKEN_SECONDS, pin])
    except Exception as exc:  # the pin stays until it expires: reads of scope use the primary meanwhile
        logger.warning("read-your-writes: no LSN recorded for %s (%s); its reads use the primary for up to %s s",
                       scope, exc, WRITE_PIN_SECONDS)


def written_lsn(*, scopes: Iterable[str]) -> tuple[int | None, bool]:
    """The highest committed-write LSN of ``scopes`` and whether a write is in flight."""
    scopes = list(scopes)
    if not scopes:
        return None, False
    best, pins = _scripts()["read"](keys=[_token_key(s) for s in scopes] + [_pins_key(s) for s in scopes])
    best = best.decode() if isinstance(best, bytes) else best
    return (int(best, 16) if best else None), bool(pins)
