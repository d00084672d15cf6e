"""Postgres primary + streaming read replicas.

https://docs.djangoproject.com/en/5.2/ref/settings/#databases
https://docs.djangoproject.com/en/5.2/topics/db/multi-db/ and docs/replicas.md
Without DATABASE_URL the embedded stack's primary is used; without
DATABASE_REPLICA_URLS the embedded replicas are (none when DATABASE_URL is set).
"""
from .env import env
from .stack import SLUICE_HOST, SLUICE_PG_PORT, SLUICE_PG_REPLICAS

SLUICE_EMBEDDED_POSTGRES = not env.str("DATABASE_URL", default="")

_connect_timeout = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
# Persistent connections: workers and the web tier reuse them instead of reconnecting
# (a TCP + auth round trip) for every task and request.
_conn_max_age = env.int("DATABASE_CONN_MAX_AGE", default=60)


def _database(url: str) -> dict:
    config = env.db_url_config(url)
    config.setdefault("OPTIONS", {})["connect_timeout"] = _connect_timeout
    config["CONN_MAX_AGE"] = _conn_max_age
    config["CONN_HEALTH_CHECKS"] = True
    return config


if SLUICE_EMBEDDED_POSTGRES:
    _primary_url = f"postgres://sluice@{SLUICE_HOST}:{SLUICE_PG_PORT}/sluice"
    _replica_urls = [
        f"postgres://sluice@{SLUICE_HOST}:{SLUICE_PG_PORT + i}/sluice"
        for i in range(1, SLUICE_PG_REPLICAS + 1)
    ]
else:
    _primary_url = env.str("DATABASE_URL")
    _replica_urls = env.list("DATABASE_REPLICA_URLS", default=[])

DATABASES = {"default": _database(_primary_url)}
for _i, _url in enumerate(_replica_urls, start=1):
    DATABASES[f"replica{_i}"] = _database(_url)

# The aliases the router and the health check treat as read replicas, in order.
SLUICE_REPLICA_ALIASES = [alias for alias in DATABASES if alias != "default"]

# Routing between them (apps/replicas/, docs/replicas.md): reads that may use a
# replica skip one that is down or lags more than these limits (bytes: 0 = no limit), and
# each process re-checks every replica this often (seconds).
SLUICE_REPLICA_MAX_LAG_SECONDS = env.float("SLUICE_REPLICA_MAX_LAG_SECONDS", default=5.0)
SLUICE_REPLICA_MAX_LAG_BYTES = env.int("SLUICE_REPLICA_MAX_LAG_BYTES", default=1024 * 1024 * 1024)
SLUICE_REPLICA_CHECK_INTERVAL = env.float("SLUICE_REPLICA_CHECK_INTERVAL", default=1.0)

DATABASE_ROUTERS = ["apps.replicas.router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
