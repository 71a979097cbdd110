"""A developer's machine: DEBUG on, SQLite, the YooKassa sandbox, emails on the console."""

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: F403
from .base import BASE_DIR, validate

(BASE_DIR / "var").mkdir(exist_ok=True)

validate(globals())
