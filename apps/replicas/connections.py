"""One query on one database alias, for code that must outlive a database that goes away
(the replica checks, the routing's on-demand replay positions, the health report)."""
from django.db import connections

PRIMARY = "default"  # the primary's alias: every write, and reads nothing else can serve


def query_one(alias: str, sql: str, *, retry: bool = False) -> tuple:
    """The first row of ``sql`` on ``alias``. On failure this thread's connection to it is
    dropped (so the next use reconnects) and the error raised. With ``retry``, a failure on
    a connection opened earlier is tried once more on a fresh one: a persistent connection
    to a server that restarted since says nothing about the server now."""
    reused = connections[alias].connection is not None
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()
    except Exception:
        connection_drop(alias)
        if not (retry and reused):
            raise
    return query_one(alias, sql)  # on a fresh connection now


def connection_drop(alias: str) -> None:
    """Close this thread's connection to ``alias`` so the next use reconnects."""
    try:
        connections[alias].close()
    except Exception:  # closing a broken connection can fail too; it is gone either way
        pass
