"""The embedded dev/test stack (Postgres primary + replicas, Redis, workers, Flower, web).

``python manage.py stack up`` starts what these settings describe; see docs/stack.md.
Parts that are configured by URL (``DATABASE_URL``, ``REDIS_URL``) are not started.
"""
from pathlib import Path

from .env import BASE_DIR, env

SLUICE_DATA_DIR = Path(env.str("SLUICE_DATA_DIR", default=str(BASE_DIR / ".sluice" / "dev"))).resolve()
SLUICE_HOST = env.str("SLUICE_HOST", default="127.0.0.1")

# Ports below 32768, outside Linux's ephemeral range: a client connection can never
# occupy them by chance between two starts.
SLUICE_PG_PORT = env.int("SLUICE_PG_PORT", default=25432)
# Replica i (1-based) listens on SLUICE_PG_PORT + i.
SLUICE_PG_REPLICAS = env.int("SLUICE_PG_REPLICAS", default=1)
# As root, Postgres runs as this unprivileged system user (created when missing).
SLUICE_PG_SYSTEM_USER = env.str("SLUICE_PG_SYSTEM_USER", default="sluice-pg")

SLUICE_REDIS_PORT = env.int("SLUICE_REDIS_PORT", default=26379)
SLUICE_WEB_PORT = env.int("SLUICE_WEB_PORT", default=8000)
SLUICE_FLOWER_PORT = env.int("SLUICE_FLOWER_PORT", default=5555)

# Flower's basic auth. An empty password makes `stack up` generate one and keep it in
# SLUICE_DATA_DIR/credentials.json (mode 0600), printed at start-up.
FLOWER_USER = env.str("FLOWER_USER", default="admin")
FLOWER_PASSWORD = env.str("FLOWER_PASSWORD", default="")
# Where operators find Flower (the admin links to it); behind a proxy, its public URL.
SLUICE_FLOWER_URL = env.str("SLUICE_FLOWER_URL", default=f"http://{SLUICE_HOST}:{SLUICE_FLOWER_PORT}/")
# The admin's queue page flags unacknowledged work taken longer ago than this (seconds).
SLUICE_ADMIN_STUCK_AFTER = env.float("SLUICE_ADMIN_STUCK_AFTER", default=300.0)
# The Django admin superuser the dev stack creates on first start (same rule for the password).
SLUICE_ADMIN_USER = env.str("SLUICE_ADMIN_USER", default="admin")
SLUICE_ADMIN_PASSWORD = env.str("SLUICE_ADMIN_PASSWORD", default="")

# Seconds `stack up` waits for every part to report healthy.
SLUICE_STACK_START_TIMEOUT = env.float("SLUICE_STACK_START_TIMEOUT", default=180.0)
