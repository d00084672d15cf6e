"""The one place settings read the environment.

Every variable is listed in ``.env.example``; see django-environ's docs:
https://django-environ.readthedocs.io/en/latest/
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()

# A `.env` file beside manage.py is read when present; real environment variables win.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
