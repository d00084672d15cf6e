"""The one place settings read the environment.

Every variable is listed in ``.env.example``; see django-environ's docs:
https://django-environ.readthedocs.io/en/latest/
"""
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()

# A `.env` file beside manage.py is read when present; real environment variables win.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def environ_defaults(defaults: dict[str, str]) -> None:
    """Set the environment variables of ``defaults`` that are not set already (the test and
    benchmark stacks' own ports and limits; a caller's own value still wins)."""
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


# Per-key rates no test or benchmark load reaches (throttling itself is tested per key).
UNTHROTTLED = {"SLUICE_THROTTLE_RATE_API": "1000000/min", "SLUICE_THROTTLE_RATE_QUERY": "1000000/min"}
