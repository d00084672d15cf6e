"""Database routing between the primary and the streaming read replicas.

What goes where:
- every write, every migration, and every read made through the ORM's default manager
  goes to ``default`` (the primary);
- read-only selectors that can tolerate replication lag (retrieval) ask for a replica
  explicitly with ``replica_alias()`` and ``.using(...)``; with no replica configured
  that is the primary too.

Lag tolerance: replicas are streaming (asynchronous) standbys, typically milliseconds
behind; the health endpoint reports each one's lag. Lag-aware selection and
read-your-writes are docs/replicas.md's subject.
"""
import itertools
import threading

from django.conf import settings

_lock = threading.Lock()
_cycle = None


def replica_alias() -> str:
    """The next replica alias in round-robin order, or ``default`` when there is none."""
    global _cycle
    aliases = settings.SLUICE_REPLICA_ALIASES
    if not aliases:
        return "default"
    with _lock:
        if _cycle is None:
            _cycle = itertools.cycle(aliases)
        return next(_cycle)


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        return "default"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        # All aliases hold the same data (physical replication).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas are read-only copies of the primary: only the primary is migrated.
        return db == "default"
