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
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- HSTS (Strict-Transport-Security) -------------------------------------------------------

# Browsers that once reached the service over HTTPS keep to HTTPS for a year, so a network attacker
# cannot strip TLS from the admin or the example page. Browsers ignore the header on plain HTTP,
# so a stack without TLS (docker-compose.yml) is unaffected; SECURE_HSTS_SECONDS=0 turns it off.
_ONE_YEAR = 365 * 24 * 60 * 60
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=_ONE_YEAR)
# Off by default: the service's host may have subdomains it does not own, and preloading is a
# promise for the whole registered domain that only its owner can make (hstspreload.org).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured("SECURE_HSTS_SECONDS is a number of seconds, 0 or more (0 sends no HSTS header).")
if SECURE_HSTS_PRELOAD and not (SECURE_HSTS_INCLUDE_SUBDOMAINS and SECURE_HSTS_SECONDS >= _ONE_YEAR):
    # hstspreload.org refuses anything less: the header would ask for what can never be granted.
    raise ImproperlyConfigured(
        "SECURE_HSTS_PRELOAD needs SECURE_HSTS_INCLUDE_SUBDOMAINS=true and SECURE_HSTS_SECONDS of at least "
        f"{_ONE_YEAR} (a year): browsers' preload lists take nothing less."
    )

validate(globals())

# base.py falls back to the sandbox without credentials, which suits a developer's machine. Here it
# would take no money and trust private networks for notifications: only when asked in so many words.
if YOOKASSA_SANDBOX and not env.str("YOOKASSA_SANDBOX", default=""):
    raise ImproperlyConfigured(
        "No YooKassa credentials are configured: set YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, "
        "or YOOKASSA_SANDBOX=true to run against the YooKassa sandbox on purpose."
    )
