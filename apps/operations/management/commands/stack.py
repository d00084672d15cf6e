"""``python manage.py stack up|down|status``: the embedded dev/test stack (docs/stack.md)."""
import json

from django.core.management.base import BaseCommand, CommandError

from devstack.errors import StackError
from devstack.manager import Stack


class Command(BaseCommand):
    help = "Start, stop or inspect the embedded stack (Postgres primary + replicas, Redis, workers, Flower, web)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["up", "down", "status"])
        parser.add_argument("--json", action="store_true", help="status: print JSON")

    def handle(self, *args, action: str, **options):
        try:
            stack = Stack()
            if action == "up":
                self._up(stack)
            elif action == "down":
                stack.down(echo=self.stdout.write)
                self.stdout.write(self.style.SUCCESS("stack stopped; data kept in " + str(stack.config.data_dir)))
            else:
                self._status(stack, as_json=options["json"])
        except StackError as exc:
            raise CommandError(str(exc)) from exc

    def _up(self, stack: Stack) -> None:
        info = stack.up(echo=self.stdout.write)
        urls, creds = info["urls"], info["credentials"]
        self.stdout.write(self.style.SUCCESS("Sluice is up."))
        self.stdout.write(
            f"  API     {urls['api']}\n"
            f"  health  {urls['health']}\n"
            f"  admin   {urls['admin']}  (user {creds['admin']['user']}, password {creds['admin']['password']})\n"
            f"  Flower  {urls['flower']}  (user {creds['flower']['user']}, password {creds['flower']['password']})\n"
            f"  data    {info['data_dir']}  (logs in {info['data_dir']}/logs)\n"
            "Stop it with: make stop   (or: python manage.py stack down)"
        )

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
            verdict = "healthy" if not health["failing"] else "FAILING: " + ", ".join(health["failing"])
            self.stdout.write(f"health: {verdict}")
