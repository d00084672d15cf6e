"""Overload control: priority classes, admission, deadlines, answer caches, the breaker.

See docs/overload.md. These are the *initial* values of the overload policy row, which
operators then tune at runtime in the admin (apps.operations.models.OverloadPolicy).
"""
from .env import env

SLUICE_OVERLOAD_DEFAULTS = {
    "shedding_enabled": env.bool("SLUICE_SHEDDING_ENABLED", default=True),
    # Estimated queue wait (s) each class may be admitted with, per stage (retrieve, generate).
    "max_wait_critical": env.float("SLUICE_MAX_WAIT_CRITICAL", default=15.0),
    "max_wait_interactive": env.float("SLUICE_MAX_WAIT_INTERACTIVE", default=2.0),
    "max_wait_batch": env.float("SLUICE_MAX_WAIT_BATCH", default=1.0),
    # Default deadline (s) of a sync or streaming request per class.
    "deadline_critical": env.float("SLUICE_DEADLINE_CRITICAL", default=30.0),
    "deadline_interactive": env.float("SLUICE_DEADLINE_INTERACTIVE", default=15.0),
    "deadline_batch": env.float("SLUICE_DEADLINE_BATCH", default=30.0),
    "batch_generation_share": env.float("SLUICE_BATCH_GENERATION_SHARE", default=0.5),
    "generation_max_concurrency": env.int("SLUICE_GENERATION_MAX_CONCURRENCY", default=0),
    "exact_cache_enabled": env.bool("SLUICE_EXACT_CACHE_ENABLED", default=True),
    "semantic_cache_enabled": env.bool("SLUICE_SEMANTIC_CACHE_ENABLED", default=True),
    "semantic_cache_threshold": env.float("SLUICE_SEMANTIC_CACHE_THRESHOLD", default=0.95),
    "stale_cache_enabled": env.bool("SLUICE_STALE_CACHE_ENABLED", default=True),
    "breaker_failures": env.int("SLUICE_BREAKER_FAILURES", default=5),
    "breaker_open_seconds": env.float("SLUICE_BREAKER_OPEN_SECONDS", default=10.0),
}
# Seconds each process keeps the policy row before reading it again (admin edits apply
# within this time).
SLUICE_OVERLOAD_POLICY_TTL = env.float("SLUICE_OVERLOAD_POLICY_TTL", default=2.0)
# The class of requests whose credentials name none (session/basic auth, keys without one).
SLUICE_DEFAULT_PRIORITY_CLASS = env.str("SLUICE_DEFAULT_PRIORITY_CLASS", default="interactive")
# Deadline (s) of an async query: how long its result is still worth computing.
SLUICE_ASYNC_DEADLINE = env.float("SLUICE_ASYNC_DEADLINE", default=300.0)
# Seconds an answer stays in the exact cache; the stale copy (any collection version) lives longer.
SLUICE_ANSWER_CACHE_TTL = env.int("SLUICE_ANSWER_CACHE_TTL", default=24 * 3600)
SLUICE_STALE_CACHE_TTL = env.int("SLUICE_STALE_CACHE_TTL", default=7 * 24 * 3600)
# Semantic cache entries kept per collection (oldest pruned beyond it).
SLUICE_SEMANTIC_CACHE_MAX_ENTRIES = env.int("SLUICE_SEMANTIC_CACHE_MAX_ENTRIES", default=10000)
# Byte-aware admission (docs/overload.md, "Broker memory"): searches and queries are refused
# (503, reason `broker_memory`) while the broker Redis's used_memory is above this share of
# its limit; critical requests only above the midpoint between the share and the limit.
SLUICE_BROKER_MEMORY_SHARE = env.float("SLUICE_BROKER_MEMORY_SHARE", default=0.8)
# The limit in bytes; 0 = the broker Redis's own maxmemory (none set: no byte check).
SLUICE_BROKER_MEMORY_LIMIT = env.int("SLUICE_BROKER_MEMORY_LIMIT", default=0)
# Service times (s) assumed per queue until workers have measured some.
SLUICE_SERVICE_TIME_PRIOR = {"embed": 1.0, "retrieve": 0.05, "generate": 2.0, "generate_batch": 2.0}
