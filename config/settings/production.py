"""Production: the same environment variables, with the transport hardened.

Run behind a TLS-terminating proxy that sets X-Forwarded-Proto.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEBUG, YOOKASSA_SANDBOX, env, validate

if DEBUG:
    raise ImproperlyConfigured("DEBUG is never on in production: it shows secrets on error pages.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes inside the private network talk plain HTTP to the health endpoint.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Cookies (the admin's session) only travel over HTTPS; off only for a stack without TLS in front.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_CONTENT_TYPE_NOSNIFF = True

validate(globals())

# base.py falls back to the sandbox without credentials, which suits a developer's machine. Here it
# would take no money and trust private networks for notifications: only when asked in so many words.
if YOOKASSA_SANDBOX and not env.str("YOOKASSA_SANDBOX", default=""):
    raise ImproperlyConfigured(
        "No YooKassa credentials are configured: set YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, "
        "or YOOKASSA_SANDBOX=true to run against the YooKassa sandbox on purpose."
    )
