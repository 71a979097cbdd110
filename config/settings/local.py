"""A developer's machine: DEBUG on, SQLite, the YooKassa sandbox, emails on the console."""

import os
from pathlib import Path

import environ

# A developer's own overrides; production and the tests read only the real environment.
environ.Env.read_env(Path(__file__).resolve().parent.parent.parent / ".env")
os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: F403
from .base import BASE_DIR, validate

(BASE_DIR / "var").mkdir(exist_ok=True)

validate(globals())
