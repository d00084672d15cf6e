"""``python -m workers.command <role>``: start one Sluice process, the way every deployment does.

One command per role (``web``, ``worker-embed``, ``worker-retrieve``, ``worker-generate``,
``flower``, ``migrate``), built from ``workers/pools.py``, the same functions the embedded
stack (``devstack/manager.py``) starts its processes with. The image's entrypoints
(``docker/entrypoints/<role>``) and the Kubernetes manifests run this module, so the local
stack, Compose and Kubernetes cannot drift apart (tests/operations/test_role_commands.py
checks it against the running test stack).

    python -m workers.command worker-embed          # exec the process (replaces this one)
    python -m workers.command worker-embed --print  # print its argv as JSON, start nothing
    python -m workers.command health worker-embed   # exit 0 if this host's process is alive

Bind address and ports come from the same settings as the local stack: ``SLUICE_HOST``
(``0.0.0.0`` in the image), ``SLUICE_WEB_PORT``, ``SLUICE_FLOWER_PORT``. See docker/README.md.
"""
import json
import os
import socket
import sys

from workers.queues import Queue

from workers.pools import role_queue, worker_role

# One worker role per queue (workers/queues.py), plus the web tier, Flower and migrations.
ROLES = ("web", *(worker_role(q) for q in Queue), "flower", "migrate")


class RoleError(Exception):
    """A role that cannot start as configured; the message says what to set."""


def _settings():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")
    from django.conf import settings

    return settings


def role_argv(role: str, *, python: str | None = None) -> list[str]:
    """The command line of ``role``, from the current settings."""
    from workers.pools import flower_argv, web_argv, worker_argv

    settings = _settings()
    if role == "web":
        return web_argv(port=settings.SLUICE_WEB_PORT, address=settings.SLUICE_HOST, python=python)
    if role == "flower":
        return flower_argv(port=settings.SLUICE_FLOWER_PORT, address=settings.SLUICE_HOST, python=python)
    if role == "migrate":
        return [python or sys.executable, str(settings.BASE_DIR / "manage.py"), "migrate", "--noinput"]
    if role_queue(role) is not None:
        return worker_argv(queue=role_queue(role), python=python)
    raise RoleError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")


def role_env(role: str, environ: dict[str, str]) -> dict[str, str]:
    """The environment ``role`` starts with: Flower refuses to start without basic auth."""
    env = dict(environ)
    if role == "flower" and not env.get("FLOWER_BASIC_AUTH"):
        user, password = env.get("FLOWER_USER") or "admin", env.get("FLOWER_PASSWORD", "")
        if not password:
            raise RoleError(
                "Flower shows every task's arguments and can revoke tasks, so it never starts without "
                "authentication: set FLOWER_PASSWORD (and FLOWER_USER, default admin), or "
                "FLOWER_BASIC_AUTH=user:password."
            )
        env["FLOWER_BASIC_AUTH"] = f"{user}:{password}"
    return env


def _connect_address(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def role_health(role: str) -> str:
    """Check that this host's ``role`` process is alive; returns what was seen, raises
    ``RoleError`` if it is not. Cheap enough for Docker/Kubernetes probes.

    - ``web``: the Django app answers ``/api/v1/health/`` (200, or 503 when some other part
      is down: that is the web tier alive and reporting, not a reason to restart it);
    - ``flower``: ``/healthcheck`` answers 200 with the configured basic auth;
    - ``worker-<queue>``: this host's worker (``<queue>@<hostname>``) has a live heartbeat
      in Redis, written only while its consumer is connected (workers/heartbeat.py).
    """
    import httpx

    settings = _settings()
    address = _connect_address(settings.SLUICE_HOST)
    if role == "web":
        allowed = [h for h in settings.ALLOWED_HOSTS if h != "*"] or ["localhost"]
        host = "health" + allowed[0] if allowed[0].startswith(".") else allowed[0]
        url = f"http://{address}:{settings.SLUICE_WEB_PORT}/api/v1/health/"
        try:
            # As the proxy would send it: an allowed Host, HTTPS terminated in front.
            response = httpx.get(url, headers={"Host": host, "X-Forwarded-Proto": "https"}, timeout=5)
        except httpx.HTTPError as exc:
            raise RoleError(f"web: {url} did not answer: {exc}") from exc
        if response.status_code not in (200, 503) or "application/json" not in response.headers.get("content-type", ""):
            raise RoleError(f"web: {url} answered {response.status_code}, not the health report")
        return f"web: {url} answered {response.status_code}"
    if role == "flower":
        url = f"http://{address}:{settings.SLUICE_FLOWER_PORT}/healthcheck"
        user, _, password = role_env("flower", dict(os.environ))["FLOWER_BASIC_AUTH"].partition(":")
        try:
            response = httpx.get(url, auth=(user, password), timeout=5)
        except httpx.HTTPError as exc:
            raise RoleError(f"flower: {url} did not answer: {exc}") from exc
        if response.status_code != 200:
            raise RoleError(f"flower: {url} answered {response.status_code}")
        return f"flower: {url} answered 200"
    if role_queue(role) is not None:
        from workers.heartbeat import heartbeat_key
        from workers.state import state_redis

        queue = role_queue(role).value
        # Celery expands the `%h` of `--hostname <queue>@%h` with socket.gethostname().
        key = heartbeat_key(queue=queue, hostname=f"{queue}@{socket.gethostname()}")
        try:
            alive = state_redis().exists(key)
        except Exception as exc:  # redis errors: the probe fails with the reason
            raise RoleError(f"{role}: cannot read heartbeats from Redis: {exc}") from exc
        if not alive:
            raise RoleError(f"{role}: no heartbeat at {key}: the worker is not consuming")
        return f"{role}: heartbeat {key} is live"
    raise RoleError(f"no health check for role {role!r}; roles: {', '.join(r for r in ROLES if r != 'migrate')}")


def main(args: list[str]) -> int:
    usage = f"usage: python -m workers.command ROLE [--print] | health ROLE   (roles: {', '.join(ROLES)})"
    try:
        if len(args) == 2 and args[0] == "health":
            print(role_health(args[1]))
            return 0
        if len(args) not in (1, 2) or (len(args) == 2 and args[1] != "--print"):
            print(usage, file=sys.stderr)
            return 2
        role = args[0]
        argv = role_argv(role)
        if len(args) == 2:
            print(json.dumps(argv))
            return 0
        env = role_env(role, dict(os.environ))
    except RoleError as exc:
        print(f"sluice: {exc}", file=sys.stderr)
        return 1
    os.chdir(_settings().BASE_DIR)
    os.execve(argv[0], argv, env)  # the role's process replaces this one (PID 1 in a container)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
