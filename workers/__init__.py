"""Queue infrastructure only: queue names, routing, the task decorator, worker start-up.

No domain code lives here; see docs/queues.md.
"""
