"""The test suite: the same settings with fast, in-process backends.

The database stays whatever DATABASE_URL says (SQLite by default, PostgreSQL in CI).
"""

import os
import secrets

# Tests run with DEBUG off, like production; a throwaway key keeps validate() satisfied.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
os.environ.setdefault("JWT_SECRET", secrets.token_urlsafe(48))

from .base import *  # noqa: F403
from .base import Q_CLUSTER, validate
from .emulator import add_emulator

# The tests start the YooKassa emulator in-process and test the app itself.
add_emulator(globals())

DEBUG = False
# Set here, not with override_settings: django_q reads it once at import.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_ROOT = None
# The tests' sandbox answers within milliseconds; a short read timeout keeps fault tests fast.
# The whole-call bound stays well above connect + read, so that a loaded machine never trips it
# (tests/billing/test_gateway.py checks it with a gateway of its own).
YOOKASSA_CONNECT_TIMEOUT = 2.0
YOOKASSA_READ_TIMEOUT = 2.0
YOOKASSA_CALL_TIMEOUT = 10.0
# The tests' cinema sites, where YooKassa may send viewers back to.
CHECKOUT_RETURN_URL_HOSTS = ["cinema.example", ".cinema.example", "localhost", "127.0.0.1"]

validate(globals())
