"""``python manage.py stack up|down|status``: the embedded dev/test stack (docs/stack.md)."""
import dataclasses
import json

from django.core.management.base import BaseCommand, CommandError

from devstack.config import StackConfig
from devstack.errors import StackError
from devstack.manager import Stack

MAX_REPLICAS = 16  # the primary's max_wal_senders / max_replication_slots


class Command(BaseCommand):
    help = "Start, stop or inspect the embedded stack (Postgres primary + replicas, Redis, workers, Flower, web)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["up", "down", "status"])
        parser.add_argument("--json", action="store_true", help="status: print JSON")
        parser.add_argument(
            "--replicas", type=int, default=None, metavar="N",
            help="number of streaming read replicas of the embedded Postgres (default SLUICE_PG_REPLICAS, 1); "
                 "replica i listens on SLUICE_PG_PORT + i",
        )

    def handle(self, *args, action: str, **options):
        try:
            stack = Stack(self._config(options["replicas"]))
            if action == "up":
                self._up(stack)
            elif action == "down":
                stack.down(echo=self.stdout.write)
                self.stdout.write(self.style.SUCCESS("stack stopped; data kept in " + str(stack.config.data_dir)))
            else:
                self._status(stack, as_json=options["json"])
        except StackError as exc:
            raise CommandError(str(exc)) from exc

    def _config(self, replicas: int | None) -> StackConfig:
        config = StackConfig.from_settings()
        if replicas is None:
            return config
        if not config.embedded_postgres:
            raise CommandError("--replicas applies to the embedded Postgres; with DATABASE_URL set, list the "
                               "replicas in DATABASE_REPLICA_URLS instead.")
        if not 0 <= replicas <= MAX_REPLICAS:
            raise CommandError(f"--replicas must be between 0 and {MAX_REPLICAS}, not {replicas}.")
        return dataclasses.replace(config, pg_replicas=replicas)

    def _up(self, stack: Stack) -> None:
        info = stack.up(echo=self.stdout.write)
        urls, creds = info["urls"], info["credentials"]
        self.stdout.write(self.style.SUCCESS("Sluice is up."))
        self.stdout.write(
            f"  API     {urls['api']}\n"
            f"  health  {urls['health']}\n"
            f"  admin   {urls['admin']}  (user {creds['admin']['user']}, password {creds['admin']['password']})\n"
            f"  Flower  {urls['flower']}  (user {creds['flower']['user']}, password {creds['flower']['password']})\n"
            f"  replicas {stack.config.pg_replicas} (ports {self._replica_ports(stack)})\n"
            f"  data    {info['data_dir']}  (logs in {info['data_dir']}/logs)\n"
            "Stop it with: make stop   (or: python manage.py stack down)"
        )

    @staticmethod
    def _replica_ports(stack: Stack) -> str:
        return ", ".join(str(r.port) for r in stack.replicas) or "none"

    def _status(self, stack: Stack, *, as_json: bool) -> None:
        from apps.operations.selectors import health_report

        rows = stack.status()
        health = health_report() if any(r["running"] for r in rows) else None
        if as_json:
            self.stdout.write(json.dumps({"parts": rows, "health": health}, indent=2, default=str))
            return
        for row in rows:
            state = self.style.SUCCESS("running") if row["running"] else self.style.WARNING("stopped")
            self.stdout.write(f"  {row['part']:<18} {state:<18} pid={row['pid'] or '-':<8} port={row['port'] or '-'}")
        if health is not None:
            if health["failing"]:
                verdict = "FAILING: " + ", ".join(health["failing"])
            elif health["degraded"]:
                verdict = "degraded: " + ", ".join(health["degraded"]) + " (reads skip a replica that is down; " \
                          "without the cache Redis nothing is cached)"
            else:
                verdict = "healthy"
            self.stdout.write(f"health: {verdict}")
