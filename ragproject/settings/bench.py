"""The benchmark stack: its own data directory and ports, the real embedding model."""
from .env import BASE_DIR, UNTHROTTLED, environ_defaults

environ_defaults({
    "SLUICE_DATA_DIR": str(BASE_DIR / ".sluice" / "bench"),
    "SLUICE_PG_PORT": "25732",
    "SLUICE_REDIS_PORT": "26679",
    "SLUICE_WEB_PORT": "8300",
    "SLUICE_FLOWER_PORT": "5855",
    # Benchmarks measure the service, not the per-key rate limits.
    **UNTHROTTLED,
})

from .local import *  # noqa: E402,F401,F403

DEBUG = False
