"""What the stack manager starts, read from Django settings."""
import dataclasses
import os
import sys
from pathlib import Path

from django.conf import settings


@dataclasses.dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    host: str
    pg_port: int
    pg_replicas: int
    pg_system_user: str
    redis_port: int
    web_port: int
    flower_port: int
    embedded_postgres: bool
    embedded_redis: bool
    embedded_cache_redis: bool
    cache_redis_maxmemory: str
    settings_module: str
    python: str
    start_timeout: float

    @classmethod
    def from_settings(cls) -> "StackConfig":
        return cls(
            data_dir=Path(settings.SLUICE_DATA_DIR).resolve(),
            host=settings.SLUICE_HOST,
            pg_port=settings.SLUICE_PG_PORT,
            pg_replicas=settings.SLUICE_PG_REPLICAS if settings.SLUICE_EMBEDDED_POSTGRES else 0,
            pg_system_user=settings.SLUICE_PG_SYSTEM_USER,
            redis_port=settings.SLUICE_REDIS_PORT,
            web_port=settings.SLUICE_WEB_PORT,
            flower_port=settings.SLUICE_FLOWER_PORT,
            embedded_postgres=settings.SLUICE_EMBEDDED_POSTGRES,
            embedded_redis=settings.SLUICE_EMBEDDED_REDIS,
            embedded_cache_redis=settings.SLUICE_EMBEDDED_CACHE_REDIS,
            cache_redis_maxmemory=settings.SLUICE_CACHE_REDIS_MAXMEMORY,
            settings_module=os.environ.get("DJANGO_SETTINGS_MODULE", "ragproject.settings.local"),
            python=sys.executable,
            start_timeout=settings.SLUICE_STACK_START_TIMEOUT,
        )

    def child_env(self) -> dict[str, str]:
        """Environment for the stack's own processes, so they use exactly this config."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "PYTHONUNBUFFERED": "1",
            "SLUICE_DATA_DIR": str(self.data_dir),
            "SLUICE_HOST": self.host,
            "SLUICE_WEB_PORT": str(self.web_port),
            "SLUICE_FLOWER_PORT": str(self.flower_port),
        }
        if self.embedded_postgres:
            env["SLUICE_PG_PORT"] = str(self.pg_port)
            env["SLUICE_PG_REPLICAS"] = str(self.pg_replicas)
        if self.embedded_redis:
            env["SLUICE_REDIS_PORT"] = str(self.redis_port)
        return env

    @property
    def cache_redis_port(self) -> int:
        """The cache Redis's port: always next to the broker's (as settings/caches.py
        derives it), so a stack moved to other ports moves both."""
        return self.redis_port + 1

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"
