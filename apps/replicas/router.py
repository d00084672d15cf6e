"""The router in ``DATABASE_ROUTERS`` (docs/replicas.md, "What goes where").

Every write, every migration and every ORM read (default managers, the admin, the API's
access checks and status pages) uses the primary (``default``): the ORM never reads from a
replica on its own. A replica serves only reads that opt in with
``apps.replicas.routing.replica_read(run, scopes=...)`` (retrieval's search), and only a
replica that is up, at most ``SLUICE_REPLICA_MAX_LAG_SECONDS`` (and
``SLUICE_REPLICA_MAX_LAG_BYTES``) behind, and has replayed every write to the read's
scopes (read-your-writes); otherwise that read goes to the primary too.
"""
from .connections import PRIMARY


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        return PRIMARY

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        # All aliases hold the same data (physical replication).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas are read-only copies of the primary: only the primary is migrated.
        return db == PRIMARY
