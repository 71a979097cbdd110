"""A developer's machine: DEBUG on, SQLite, the YooKassa sandbox, emails on the console."""

import base64
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
# The demo Auth service beside the sandbox (sandbox/auth_demo.py) receives billing's events, signed
# with this machine's own secret, so a newcomer sees deliveries work (README, "Telling Auth ...").
_auth_demo_secret_file = BASE_DIR / "var" / "local-auth-demo-webhook-secret"
if not _auth_demo_secret_file.exists():
    _auth_demo_secret_file.write_text("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
AUTH_DEMO_WEBHOOK_SECRET = _auth_demo_secret_file.read_text().strip()
SERVICE_WEBHOOKS = [
    *SERVICE_WEBHOOKS,  # noqa: F405
    {
        "name": "auth-demo",
        "url": f"http://127.0.0.1:{YOOKASSA_SANDBOX_PORT}/auth-demo/",  # noqa: F405
        "secret": AUTH_DEMO_WEBHOOK_SECRET,
        "event_types": AUTH_WEBHOOK_EVENT_TYPES,  # noqa: F405
    },
]
STATIC_ROOT = None  # served from the apps' own folders (WHITENOISE_USE_FINDERS)

validate(globals())
