"""A developer's machine: DEBUG on, SQLite, the YooKassa sandbox, emails on the console."""

import os
import secrets
from pathlib import Path

import environ

# A developer's own overrides; production and the tests read only the real environment.
_DOTENV = Path(__file__).resolve().parent.parent.parent / ".env"
if _DOTENV.is_file():
    environ.Env.read_env(_DOTENV)
os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402, F403
from .base import BASE_DIR, validate  # noqa: E402
from .emulator import add_emulator  # noqa: E402

# The YooKassa emulator runs beside the service (Procfile.local: `manage.py runsandbox`).
add_emulator(globals())

(BASE_DIR / "var").mkdir(exist_ok=True)
if not JWT_SECRET and not JWT_PUBLIC_KEY:  # noqa: F405
    # A random key of this machine's own, so `manage.py viewer_token` can sign test tokens.
    _jwt_secret_file = BASE_DIR / "var" / "local-jwt-secret"
    if not _jwt_secret_file.exists():
        _jwt_secret_file.write_text(secrets.token_urlsafe(48))
    JWT_SECRET = _jwt_secret_file.read_text().strip()
STATIC_ROOT = None  # served from the apps' own folders (WHITENOISE_USE_FINDERS)

validate(globals())
