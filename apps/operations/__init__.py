"""Operations: overload control (``overload/``: admission, policy, generation slots, the
breaker), health, ``/metrics`` (``metrics.py`` is the recording leaf every app imports),
the admin's queue page, the JSON error handler and the async-view helpers (``api/``), the
``stack`` command."""
