"""The test stack: its own data directory and ports, so it never touches a running dev stack."""
from .env import BASE_DIR, UNTHROTTLED, environ_defaults

# Defaults only: an environment variable set by the caller still wins.
environ_defaults({
    "SLUICE_DATA_DIR": str(BASE_DIR / ".sluice" / "test"),
    "SLUICE_PG_PORT": "25532",
    "SLUICE_REDIS_PORT": "26479",
    "SLUICE_WEB_PORT": "8100",
    "SLUICE_FLOWER_PORT": "5655",
    "SLUICE_EMBEDDING_BACKEND": "hash",
    # Two streaming replicas, so routing, failover and read-your-writes are tested with N > 1;
    # a short lag limit so the lag tests wait seconds, not minutes.
    "SLUICE_PG_REPLICAS": "2",
    "SLUICE_REPLICA_MAX_LAG_SECONDS": "2",
    "SLUICE_WORKER_HEARTBEAT_TTL": "6",
    "SLUICE_WORKER_HEARTBEAT_INTERVAL": "1",
    # The visibility timeout keeps its production default (600 s): a killed worker's task
    # must come back through the dead-worker requeue (workers/recovery.py), in seconds.
    # Fault drills (tests/faults/): fault points can be armed; stuck documents are picked
    # up by the reconciler within seconds.
    "SLUICE_FAULT_INJECTION": "true",
    "SLUICE_REQUEUE_INTERVAL": "2",
    "SLUICE_RECONCILE_INTERVAL": "2",
    "SLUICE_INGEST_STUCK_AFTER": "6",
    "SLUICE_HISTORY_INTERVAL": "1",  # the admin's charts fill within a test (tests/operations/test_admin_charts.py)
    # Small limits so the limit tests send little data.
    "SLUICE_UPLOAD_MAX_BYTES": str(2 * 1024 * 1024),
    "SLUICE_UPLOAD_MAX_FILES": "20",
    "SLUICE_TEXT_MAX_CHARS": "1000000",
    # Overload policy edits (tests change it at runtime, as operators do) apply quickly.
    "SLUICE_OVERLOAD_POLICY_TTL": "0.2",
    # Throttling is tested with per-key rates; the suite's own load tests must not hit it.
    **UNTHROTTLED,
    "SLUICE_THROTTLE_RATE_ANON": "1000000/min",
})

from .local import *  # noqa: E402,F401,F403

DEBUG = False

# HTTP basic auth hashes the password on every request; PBKDF2's deliberate slowness would
# dominate the tests' timings. (API keys with a fast hash are the production answer.)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
