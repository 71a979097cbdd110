"""Settings shared by every environment, read from the process environment (12-factor).

Every value has a default that suits a zero-setup local run; `production.py` hardens them and
`validate()` at the bottom refuses configurations that must never start.
"""

import ipaddress
from pathlib import Path

import environ
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# --- Core -----------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# Only good enough for DEBUG runs: validate() refuses it when DEBUG is off.
INSECURE_SECRET_KEY_PREFIX = "django-insecure-"  # noqa: S105 - a marker, not a key
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY_PREFIX + "local-development-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Browser origins (the cinema's web apps) allowed to open the GraphQL websocket.
GRAPHQL_WS_ALLOWED_ORIGINS = env.list("GRAPHQL_WS_ALLOWED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    # Content-Security-Policy (below); the app adds django-csp's checks of its settings.
    "csp",
    "django_q",
    "anymail",
    "strawberry_django",
    "plans",
    "billing",
    "webhooks",
    "mail",
    "deliveries",
    "graphql_api",
    "internal_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Serves the admin's static files in production without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The local run writes from several processes (web, worker, admin): wait for the lock
    # instead of failing, and take it at BEGIN so two writers never deadlock on an upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Internationalisation -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# With DEBUG, static files come straight from the apps (no collectstatic); daphne serves none itself.
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG

# --- Content-Security-Policy (django-csp) ----------------------------------------------------

# Every page the service renders (the admin, the example checkout page) runs only scripts and
# styles from its own origin, or inline ones carrying the response's nonce (the example page's).
# The admin has no inline script or style attribute, so it needs nothing looser. 'self' in
# connect-src covers the service's own ws:// and wss:// origin too (CSP Level 3), for the example
# page's live payment status. GraphiQL (DEBUG only) loads from a CDN with inline scripts: /graphql/
# is left out while it is served.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/graphql/"] if DEBUG else [],
    "DIRECTIVES": {
        "default-src": [csp_constants.NONE],
        "script-src": [csp_constants.SELF, csp_constants.NONCE],
        "style-src": [csp_constants.SELF, csp_constants.NONCE],
        "img-src": [csp_constants.SELF],
        "font-src": [csp_constants.SELF],
        "connect-src": [csp_constants.SELF],
        "form-action": [csp_constants.SELF],
        "base-uri": [csp_constants.NONE],
        "object-src": [csp_constants.NONE],
        "frame-ancestors": [csp_constants.NONE],
    },
}

# --- Channels (websockets) and cache --------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
# Every Redis client has timeouts, so that a Redis that accepts connections and never answers (a
# frozen server) costs a bounded wait, never a hung request (issue 9). Seconds.
# Connecting, for both the cache and the channel layer.
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.5)
# Each cache command (mail's debounce runs on a viewer's request path: a fraction of a second).
REDIS_CACHE_SOCKET_TIMEOUT = env.float("REDIS_CACHE_SOCKET_TIMEOUT", default=0.25)
# Each channel-layer command. channels_redis waits for messages with a BZPOPMIN of 5 s, so this
# must stay above that (validate() insists); nothing on a request path waits for the layer.
REDIS_LAYER_SOCKET_TIMEOUT = env.float("REDIS_LAYER_SOCKET_TIMEOUT", default=10.0)
# Channel-layer connections per event loop (a web process has one loop, a worker one hint sender).
REDIS_LAYER_MAX_CONNECTIONS = env.int("REDIS_LAYER_MAX_CONNECTIONS", default=20)
CHANNEL_LAYER_BZPOPMIN_SECONDS = 5


def redis_channel_layers(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "graphql_api.channel_layer.BoundedRedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": url,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
                        "socket_timeout": REDIS_LAYER_SOCKET_TIMEOUT,
                        "max_connections": REDIS_LAYER_MAX_CONNECTIONS,
                        # A command waits this long for a free connection of the loop's pool.
                        "pool_timeout": REDIS_LAYER_SOCKET_TIMEOUT,
                    }
                ]
            },
        },
    }


def redis_caches(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_CACHE_SOCKET_TIMEOUT},
        }
    }


if REDIS_URL:
    CHANNEL_LAYERS = redis_channel_layers(REDIS_URL)
    CACHES = redis_caches(REDIS_URL)
else:
    # Per process only: good for one local process and for tests, never for production.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Billing events and live payment status ------------------------------------------------

# Called after commit with each billing event (dotted paths): the websocket hint that wakes live
# payment subscriptions, and mail's prompt delivery. Both are hints: without them, subscriptions
# still re-read (below) and mail's one-minute schedule still reads the outbox.
BILLING_EVENT_LISTENERS = env.list(
    "BILLING_EVENT_LISTENERS",
    default=[
        "graphql_api.live.on_billing_event",
        "mail.receivers.on_billing_event",
        "deliveries.receivers.on_billing_event",
    ],
)
# Channel-layer hints are at most once: a live payment subscription also re-reads the payment at
# least this often (seconds), so a lost hint delays an update by at most this much.
LIVE_PAYMENT_RECHECK_SECONDS = env.float("LIVE_PAYMENT_RECHECK_SECONDS", default=10.0)
# The first re-read comes this soon after the subscription starts, a change or a hint; while
# nothing changes the interval doubles, up to LIVE_PAYMENT_RECHECK_SECONDS.
LIVE_PAYMENT_RECHECK_MIN_SECONDS = env.float("LIVE_PAYMENT_RECHECK_MIN_SECONDS", default=2.0)
# A viewer's live websockets and live subscriptions at once, per web process (graphql_api/live_limits.py).
# Past them a socket is closed with code 4008, a subscription answers TOO_MANY_SUBSCRIPTIONS.
LIVE_MAX_SOCKETS_PER_VIEWER = env.int("LIVE_MAX_SOCKETS_PER_VIEWER", default=10)
LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER = env.int("LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER", default=20)

# --- Background tasks (django-q2, ORM broker) -----------------------------------------------

# The ORM broker is at-least-once with a lease of `retry` seconds: `retry` stays well above
# `timeout` so a running task is never handed to a second worker, and every task is idempotent.
Q_CLUSTER = {
    "name": "billing",
    "orm": "default",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=120),
    "retry": env.int("Q_RETRY", default=300),
    "max_attempts": 5,
    "bulk": 1,
    "queue_limit": 4,
    "save_limit": 1000,
    "catch_up": False,
    "poll": 0.5,
}
# The recurring jobs, by owner: `manage.py setup_schedules` makes the django-q2 schedules whose
# names start with each prefix exactly the ones listed (name -> (task, every how many minutes)).
SCHEDULE_PROVIDERS = {
    "billing: ": "billing.schedules.BILLING_SCHEDULES",
    "mail: ": "mail.schedules.MAIL_SCHEDULES",
    "webhooks: ": "webhooks.schedules.WEBHOOKS_SCHEDULES",
    "deliveries: ": "deliveries.schedules.DELIVERIES_SCHEDULES",
}

# --- Email (Anymail) ------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Cinema <billing@cinema.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
MAILGUN_API_KEY = env.str("MAILGUN_API_KEY", default="")
# Mailgun's delivery-tracking webhook is served only when it can be verified with this key.
MAILGUN_WEBHOOK_SIGNING_KEY = env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default="")
ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_WEBHOOK_SIGNING_KEY} if MAILGUN_WEBHOOK_SIGNING_KEY else {}
if MAILGUN_API_KEY:
    EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    ANYMAIL |= {
        "MAILGUN_API_KEY": MAILGUN_API_KEY,
        "MAILGUN_SENDER_DOMAIN": env.str("MAILGUN_SENDER_DOMAIN", default=""),
        "MAILGUN_API_URL": env.str("MAILGUN_API_URL", default="https://api.mailgun.net/v3"),
    }
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Where viewers are told to write when something needs a person.
MAIL_SUPPORT_EMAIL = env.str("MAIL_SUPPORT_EMAIL", default="support@cinema.example")
# A failed send is tried again this many minutes after each failure; after the last, it is FAILED.
MAIL_RETRY_MINUTES = [int(minutes) for minutes in env.list("MAIL_RETRY_MINUTES", default=["1", "10", "60", "360"])]
# Billing events recorded this long ago or less get their emails (a row committed late is still seen).
MAIL_EVENT_LOOKBACK_HOURS = env.int("MAIL_EVENT_LOOKBACK_HOURS", default=24)

# --- Event delivery to the cinema's services (deliveries/) ------------------------------------

# The services that receive billing's events as Standard Webhooks POSTs, beside those added in the
# admin. SERVICE_WEBHOOKS is a JSON list of {"name", "url", "secret", "previous_secret"?,
# "event_types"}; AUTH_WEBHOOK_* configure the Auth service's endpoint ("auth") alone. Secrets are
# whsec_<base64>; a previous_secret signs beside the new one while a rotation is under way. They are
# synced into the endpoints table by the delivery job; settings win for the endpoints they name.
SERVICE_WEBHOOKS = env.json("SERVICE_WEBHOOKS", default=[])
AUTH_WEBHOOK_URL = env.str("AUTH_WEBHOOK_URL", default="")
AUTH_WEBHOOK_SECRET = env.str("AUTH_WEBHOOK_SECRET", default="")
AUTH_WEBHOOK_PREVIOUS_SECRET = env.str("AUTH_WEBHOOK_PREVIOUS_SECRET", default="")
# What Auth hears: entitlements.changed carries the whole new state and its version; the rest are
# the changes behind it, for receivers that want them.
AUTH_WEBHOOK_EVENT_TYPES = env.list(
    "AUTH_WEBHOOK_EVENT_TYPES",
    default=[
        "entitlements.changed",
        "subscription.activated",
        "subscription.renewed",
        "subscription.past_due",
        "subscription.auto_renew_changed",
        "subscription.cancel_scheduled",
        "subscription.canceled",
        "subscription.expired",
        "payment.succeeded",
        "refund.succeeded",
    ],
)
# Events recorded this long ago or less are delivered (a row committed late is still seen); an
# endpoint gets the events recorded after it was created, older ones by a replay from the admin.
DELIVERY_EVENT_LOOKBACK_HOURS = env.int("DELIVERY_EVENT_LOOKBACK_HOURS", default=24)
# A failed delivery is tried again after a random wait between the minimum and an exponential
# ceiling (the minimum doubled per failure, capped at the maximum), for this many days; then DEAD.
DELIVERY_RETRY_MIN_SECONDS = env.float("DELIVERY_RETRY_MIN_SECONDS", default=30.0)
DELIVERY_RETRY_MAX_SECONDS = env.float("DELIVERY_RETRY_MAX_SECONDS", default=3600.0)
DELIVERY_RETRY_DAYS = env.float("DELIVERY_RETRY_DAYS", default=3.0)
# Each POST: connecting, then each read of the answer (seconds).
DELIVERY_CONNECT_TIMEOUT = env.float("DELIVERY_CONNECT_TIMEOUT", default=3.0)
DELIVERY_READ_TIMEOUT = env.float("DELIVERY_READ_TIMEOUT", default=10.0)
# A claimed delivery whose attempt has not ended by then is due again (its worker died): well
# above connect + read timeouts.
DELIVERY_LEASE_SECONDS = env.float("DELIVERY_LEASE_SECONDS", default=60.0)
# Deliveries claimed and sent at once (in parallel) by one worker.
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=16)

# --- Mailgun tracking webhook: replay window ----------------------------------------------------

# A tracking webhook signed longer ago than this (or more than 5 minutes ahead) is refused with
# 406, as is a signature token already seen (tokens are kept this long: mail.services). Mailgun
# retries a webhook we failed for 8 hours with its original signature, and never retries a 406:
# the window must cover the retries (9 hours), or a bounce that met our 500 would be lost.
MAILGUN_WEBHOOK_MAX_AGE_SECONDS = env.int("MAILGUN_WEBHOOK_MAX_AGE_SECONDS", default=9 * 3600)
MAILGUN_RETRY_SECONDS = 8 * 3600

# --- YooKassa -------------------------------------------------------------------------------

YOOKASSA_PRODUCTION_API_URL = "https://api.yookassa.ru/v3"
_real_shop_id = env.str("YOOKASSA_SHOP_ID", default="")
_real_secret_key = env.str("YOOKASSA_SECRET_KEY", default="")
YOOKASSA_HAS_REAL_CREDENTIALS = bool(_real_shop_id or _real_secret_key)
# Without credentials the sandbox, here; production.py insists on being told so (YOOKASSA_SANDBOX=true).
YOOKASSA_SANDBOX = env.bool("YOOKASSA_SANDBOX", default=not YOOKASSA_HAS_REAL_CREDENTIALS)

# The service's side of a sandbox. With YOOKASSA_SANDBOX on, the service pays through a YooKassa
# sandbox, ours (sandbox/, the emulator) or any other, at this API URL with its public test
# credentials, which only a sandbox accepts; they are never real YooKassa secrets. That is all the
# service needs of a sandbox: the emulator itself (the `sandbox` app and its settings) is in
# config/settings/emulator.py, added only where it runs (the local and test settings, and
# config/settings/sandbox.py for compose's sandbox service).
YOOKASSA_SANDBOX_API_URL = env.str("YOOKASSA_SANDBOX_API_URL", default="http://127.0.0.1:8001/v3")


def yookassa_api_url(sandbox_api_url: str) -> str:
    """YOOKASSA_API_URL when set, else the sandbox's API (YOOKASSA_SANDBOX on) or YooKassa's own."""
    default = sandbox_api_url if YOOKASSA_SANDBOX else YOOKASSA_PRODUCTION_API_URL
    return env.str("YOOKASSA_API_URL", default="") or default


if YOOKASSA_SANDBOX:
    YOOKASSA_SHOP_ID = env.str("YOOKASSA_SANDBOX_SHOP_ID", default="100500")
    YOOKASSA_SECRET_KEY = env.str("YOOKASSA_SANDBOX_SECRET_KEY", default="test_sandbox_key")
else:
    YOOKASSA_SHOP_ID = _real_shop_id
    YOOKASSA_SECRET_KEY = _real_secret_key
YOOKASSA_API_URL = yookassa_api_url(YOOKASSA_SANDBOX_API_URL)

# 54-FZ receipts: send the customer's email and one item with this VAT code (1 = no VAT).
YOOKASSA_RECEIPTS = env.bool("YOOKASSA_RECEIPTS", default=False)
YOOKASSA_VAT_CODE = env.int("YOOKASSA_VAT_CODE", default=1)
# Notifications are accepted only from these networks: YooKassa's published ranges
# (yookassa-notes.md section 4), plus loopback and private networks while the sandbox is in use.
YOOKASSA_PUBLISHED_NETWORKS = [
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "77.75.154.128/25",
    "2a02:5180:0:1509::/64",
    "2a02:5180:0:2655::/64",
    "2a02:5180:0:1533::/64",
    "2a02:5180:0:2669::/64",
]
_SANDBOX_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
YOOKASSA_TRUSTED_NETWORKS = env.list(
    "YOOKASSA_TRUSTED_NETWORKS",
    default=YOOKASSA_PUBLISHED_NETWORKS + (_SANDBOX_NETWORKS if YOOKASSA_SANDBOX else []),
)
# The reverse proxies in front of the service (CIDRs; none by default). Only a request from one of
# them has its X-Forwarded-For read, from the right, for the address notifications are checked by.
YOOKASSA_TRUSTED_PROXIES = env.list("YOOKASSA_TRUSTED_PROXIES", default=[])
# The SDK sets no HTTP timeout at all; the gateway bounds every call with these (seconds): the
# connection, each wait for the next bytes of the answer, and the whole call, so that an answer
# trickling in a byte at a time cannot hold a worker for longer than YOOKASSA_CALL_TIMEOUT.
YOOKASSA_CONNECT_TIMEOUT = env.float("YOOKASSA_CONNECT_TIMEOUT", default=5.0)
YOOKASSA_READ_TIMEOUT = env.float("YOOKASSA_READ_TIMEOUT", default=15.0)
YOOKASSA_CALL_TIMEOUT = env.float("YOOKASSA_CALL_TIMEOUT", default=YOOKASSA_CONNECT_TIMEOUT + YOOKASSA_READ_TIMEOUT)

# --- Inbox limits and retention -----------------------------------------------------------------

# Notifications from outside YOOKASSA_TRUSTED_NETWORKS are never stored one by one: each source
# network (an IPv4 address, an IPv6 /64) gets one tally row per window (a count, and a sample of
# the first 1 KiB of one body). Past this many in one window of this many seconds it is answered
# 429, not 403.
YOOKASSA_UNTRUSTED_RATE_LIMIT = env.int("YOOKASSA_UNTRUSTED_RATE_LIMIT", default=30)
YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS = env.int("YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS", default=60)
# Only this many source networks per window get rows (and samples) of their own; all later ones
# share one "other" row and its rate limit, so a window's growth is bounded whatever the sources.
YOOKASSA_UNTRUSTED_TRACKED_NETWORKS = env.int("YOOKASSA_UNTRUSTED_TRACKED_NETWORKS", default=100)
# A trusted notification still "received" this many minutes after it came was interrupted (its
# process or the database went away): it is marked deferred; YooKassa redelivers, reconciliation
# catches up. Well above the longest a notification takes (a YooKassa call or two).
YOOKASSA_NOTIFICATION_STALE_MINUTES = env.int("YOOKASSA_NOTIFICATION_STALE_MINUTES", default=15)
# Rows of the logs that grow with traffic are deleted this many days after they were written (in
# batches of RETENTION_BATCH_SIZE rows, a time budget per run). Payments, refunds, subscriptions,
# saved cards and plans are never deleted. validate() keeps each age above the windows that read it.
RETENTION_NOTIFICATION_DAYS = env.int("RETENTION_NOTIFICATION_DAYS", default=90)
RETENTION_UNTRUSTED_NOTIFICATION_DAYS = env.int("RETENTION_UNTRUSTED_NOTIFICATION_DAYS", default=30)
RETENTION_EVENT_DAYS = env.int("RETENTION_EVENT_DAYS", default=180)
RETENTION_EMAIL_DAYS = env.int("RETENTION_EMAIL_DAYS", default=180)
# Delivered and dead event deliveries (with their attempts); pending ones are never deleted.
RETENTION_DELIVERY_DAYS = env.int("RETENTION_DELIVERY_DAYS", default=30)
RETENTION_CLIENT_REQUEST_DAYS = env.int("RETENTION_CLIENT_REQUEST_DAYS", default=90)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)

# --- Checkout ---------------------------------------------------------------------------------

# Hosts YooKassa may send a viewer back to after paying (a leading dot allows subdomains).
CHECKOUT_RETURN_URL_HOSTS = env.list("CHECKOUT_RETURN_URL_HOSTS", default=["localhost", "127.0.0.1"])

# --- Renewals -----------------------------------------------------------------------------------

# A subscription is charged this long before its period ends.
RENEWAL_LEAD_TIME_HOURS = env.int("RENEWAL_LEAD_TIME_HOURS", default=24)
# After a failed renewal: retry this many days after the first failure, then give up.
DUNNING_RETRY_DAYS = [int(day) for day in env.list("DUNNING_RETRY_DAYS", default=["1", "3", "5"])]
# A past-due subscription keeps access this many days past its period's end.
DUNNING_GRACE_DAYS = env.int("DUNNING_GRACE_DAYS", default=7)
# Viewers are told of a renewal this many days ahead.
RENEWAL_NOTICE_DAYS = env.int("RENEWAL_NOTICE_DAYS", default=3)

# --- Refunds ----------------------------------------------------------------------------------

# Within this many days of a paid period's start, a cancellation gets everything back.
REFUND_FULL_WINDOW_DAYS = env.int("REFUND_FULL_WINDOW_DAYS", default=7)

# --- Viewer authentication (JWTs issued by the cinema's Auth service) -----------------------

JWT_SECRET = env.str("JWT_SECRET", default="")
JWT_PUBLIC_KEY = env.str("JWT_PUBLIC_KEY", default="").replace("\\n", "\n")
JWT_ALGORITHM = "RS256" if JWT_PUBLIC_KEY else "HS256"
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="") or None
JWT_ISSUER = env.str("JWT_ISSUER", default="") or None

# --- Operators' admin: passwords, login lockout (django-axes), optional TOTP (django-otp) -----

# The admin is django.contrib.admin on a site class that can require TOTP (admin_access/sites.py).
INSTALLED_APPS = [
    "admin_access.admin_config.OperatorAdminConfig" if app == "django.contrib.admin" else app for app in INSTALLED_APPS
] + ["axes", "django_otp", "django_otp.plugins.otp_totp", "admin_access"]
# OTPMiddleware after AuthenticationMiddleware (it marks request.user verified or not); axes' last,
# as its docs require, so its lockout page passes through every other middleware on the way out.
MIDDLEWARE = [*MIDDLEWARE, "django_otp.middleware.OTPMiddleware", "axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out login before any password is checked; authenticates no one itself.
    "admin_access.backends.AdminLoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Applied by createsuperuser, changepassword and the admin's password forms (not by
# `createsuperuser --noinput`, which takes DJANGO_SUPERUSER_PASSWORD as it is).
ADMIN_PASSWORD_MIN_LENGTH = env.int("ADMIN_PASSWORD_MIN_LENGTH", default=12)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": ADMIN_PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# A login is refused once this many failures were counted for the same username from the same
# address (an IPv6 client's whole /64 being one address) within the cool-off; failures while
# locked are not counted and do not extend it, and a success clears the count.
# By username+address, not by either alone: an attacker cannot lock an operator out from their own
# address (by username alone one could, from anywhere), nor lock out a whole office behind one NAT
# (by address alone), while every address still gets only this many guesses per username.
ADMIN_LOGIN_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
# ...and once this many were counted for a username from all addresses together, it is refused from
# everywhere (admin_access/handler.py): a guesser with many networks gets no more guesses than this.
# The price: anyone can lock an operator out for the cool-off (axes_reset_username unlocks).
ADMIN_LOGIN_USERNAME_FAILURE_LIMIT = env.int("ADMIN_LOGIN_USERNAME_FAILURE_LIMIT", default=20)
# 0 = a lock lifts only with `manage.py axes_reset...`.
ADMIN_LOGIN_COOLOFF_MINUTES = env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15)
# axes' AXES_LOCKOUT_PARAMETERS, written as criteria separated by commas, each a "+"-joined
# combination of username, ip_address and user_agent; a login is refused when any one is over the limit.
ADMIN_LOGIN_LOCKOUT_BY = env.list("ADMIN_LOGIN_LOCKOUT_BY", default=["username+ip_address"])
# The reverse proxies in front of the admin (CIDRs): only a request from one of them has its
# X-Forwarded-For read, from the right. Default: the same proxies as YooKassa's webhook.
ADMIN_TRUSTED_PROXIES = env.list("ADMIN_TRUSTED_PROXIES", default=YOOKASSA_TRUSTED_PROXIES)
AXES_FAILURE_LIMIT = ADMIN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = ADMIN_LOGIN_COOLOFF_MINUTES / 60 if ADMIN_LOGIN_COOLOFF_MINUTES else None
AXES_LOCKOUT_PARAMETERS = [
    criterion.split("+") if "+" in criterion else criterion for criterion in ADMIN_LOGIN_LOCKOUT_BY
]
AXES_RESET_ON_SUCCESS = True
# A refused login during a lock is neither recorded nor restarts the cool-off: each one would be a
# write anyone can cause, and the lock would never lift while a guesser keeps posting.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "admin_access.handler.AdminLoginHandler"
AXES_CLIENT_IP_CALLABLE = "admin_access.addresses.client_address"
AXES_LOCKOUT_CALLABLE = "admin_access.lockout.lockout_response"

# On: the admin asks for a TOTP token after the password (`manage.py enrol_admin_totp <username>`
# gives an operator a device first). Off: passwords alone, as without django-otp.
ADMIN_OTP_REQUIRED = env.bool("ADMIN_OTP_REQUIRED", default=False)
# The name authenticator apps show beside the account.
OTP_TOTP_ISSUER = env.str("ADMIN_OTP_ISSUER", default="Cinema billing")
# The admin never shows a device's secret once it is saved.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
        # Its banner at every start of every process; its warnings (lockouts) still show.
        "axes.apps": {"level": "WARNING"},
    },
}


def is_insecure_secret_key(key: str) -> bool:
    """The same test as Django's security check W009: too short, too uniform, or a default."""
    return key.startswith(INSECURE_SECRET_KEY_PREFIX) or len(key) < 50 or len(set(key)) < 5


def validate(settings: dict) -> None:
    """Refuse to start a configuration that could hurt viewers or leak secrets."""
    if not settings["DEBUG"] and is_insecure_secret_key(settings["SECRET_KEY"]):
        raise ImproperlyConfigured(
            "DEBUG is off but SECRET_KEY is missing or insecure: set SECRET_KEY to a random "
            "string of at least 50 characters."
        )
    if settings["YOOKASSA_HAS_REAL_CREDENTIALS"]:
        if not (_real_shop_id and _real_secret_key):
            raise ImproperlyConfigured("Set both YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, or neither.")
        if settings["YOOKASSA_SANDBOX"]:
            raise ImproperlyConfigured(
                "YOOKASSA_SANDBOX is on while real YooKassa credentials are configured: "
                "the sandbox is never used with real credentials."
            )
        if not settings["YOOKASSA_API_URL"].startswith("https://"):
            raise ImproperlyConfigured(
                "Real YooKassa credentials are only ever sent over HTTPS: YOOKASSA_API_URL must start with https://."
            )
    elif not settings["YOOKASSA_SANDBOX"]:
        raise ImproperlyConfigured(
            "YOOKASSA_SANDBOX is off but no YooKassa credentials are configured: "
            "set YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY, or YOOKASSA_SANDBOX=true."
        )
    _validate_live(settings)
    if not 1 <= settings["YOOKASSA_VAT_CODE"] <= 12:
        raise ImproperlyConfigured(
            "YOOKASSA_VAT_CODE is one of YooKassa's VAT codes, 1 to 12 (1 = no VAT): YooKassa refuses any other."
        )
    for name in ("YOOKASSA_TRUSTED_NETWORKS", "YOOKASSA_TRUSTED_PROXIES"):
        _check_networks(name, settings[name])
    if not settings["YOOKASSA_CALL_TIMEOUT"] > 0:
        raise ImproperlyConfigured("YOOKASSA_CALL_TIMEOUT must be a positive number of seconds.")
    if not settings["DEBUG"] and not settings["JWT_PUBLIC_KEY"] and len(settings["JWT_SECRET"]) < 32:
        raise ImproperlyConfigured(
            "Viewers cannot be authenticated: set JWT_PUBLIC_KEY (RS256), or JWT_SECRET (HS256, 32+ characters)."
        )
    if settings["MAILGUN_WEBHOOK_MAX_AGE_SECONDS"] < MAILGUN_RETRY_SECONDS:
        raise ImproperlyConfigured(
            f"MAILGUN_WEBHOOK_MAX_AGE_SECONDS ({settings['MAILGUN_WEBHOOK_MAX_AGE_SECONDS']}) must be at least "
            f"{MAILGUN_RETRY_SECONDS} seconds: Mailgun retries a failed webhook for 8 hours with its original "
            "signature, and a 406 to a retry loses the event."
        )
    _validate_dunning(settings["DUNNING_RETRY_DAYS"], settings["DUNNING_GRACE_DAYS"])
    _validate_task_lease(settings["Q_CLUSTER"])
    _validate_admin_access(settings)
    _validate_inbox_and_retention(settings)
    _validate_deliveries(settings)


def _validate_deliveries(settings: dict) -> None:
    if not 0 < settings["DELIVERY_RETRY_MIN_SECONDS"] <= settings["DELIVERY_RETRY_MAX_SECONDS"]:
        raise ImproperlyConfigured(
            "DELIVERY_RETRY_MIN_SECONDS must be positive and at most DELIVERY_RETRY_MAX_SECONDS."
        )
    if not settings["DELIVERY_RETRY_DAYS"] > 0 or settings["DELIVERY_EVENT_LOOKBACK_HOURS"] < 1:
        raise ImproperlyConfigured("DELIVERY_RETRY_DAYS must be positive, DELIVERY_EVENT_LOOKBACK_HOURS at least 1.")
    if not 1 <= settings["DELIVERY_BATCH_SIZE"] <= 100:
        raise ImproperlyConfigured("DELIVERY_BATCH_SIZE must be 1 to 100 deliveries.")
    timeouts = settings["DELIVERY_CONNECT_TIMEOUT"] + settings["DELIVERY_READ_TIMEOUT"]
    if min(settings["DELIVERY_CONNECT_TIMEOUT"], settings["DELIVERY_READ_TIMEOUT"]) <= 0:
        raise ImproperlyConfigured("DELIVERY_CONNECT_TIMEOUT and DELIVERY_READ_TIMEOUT must be positive seconds.")
    if settings["DELIVERY_LEASE_SECONDS"] < 2 * timeouts:
        # A POST still waiting for its answer when the lease runs out is sent a second time.
        raise ImproperlyConfigured(
            f"DELIVERY_LEASE_SECONDS ({settings['DELIVERY_LEASE_SECONDS']}) must be at least twice "
            f"DELIVERY_CONNECT_TIMEOUT + DELIVERY_READ_TIMEOUT ({timeouts} s)."
        )
    if not isinstance(settings["SERVICE_WEBHOOKS"], list):
        raise ImproperlyConfigured("SERVICE_WEBHOOKS must be a JSON list of endpoints.")
    if bool(settings["AUTH_WEBHOOK_URL"]) != bool(settings["AUTH_WEBHOOK_SECRET"]):
        raise ImproperlyConfigured("Set both AUTH_WEBHOOK_URL and AUTH_WEBHOOK_SECRET, or neither.")


def _validate_live(settings: dict) -> None:
    for name in ("LIVE_PAYMENT_RECHECK_SECONDS", "LIVE_PAYMENT_RECHECK_MIN_SECONDS"):
        if not settings[name] > 0:
            raise ImproperlyConfigured(f"{name} must be a positive number of seconds.")
    for name in ("LIVE_MAX_SOCKETS_PER_VIEWER", "LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER", "REDIS_LAYER_MAX_CONNECTIONS"):
        if settings[name] < 1:
            raise ImproperlyConfigured(f"{name} must be at least 1.")
    for name in ("REDIS_CONNECT_TIMEOUT", "REDIS_CACHE_SOCKET_TIMEOUT"):
        if not settings[name] > 0:
            raise ImproperlyConfigured(f"{name} must be a positive number of seconds.")
    if not settings["REDIS_LAYER_SOCKET_TIMEOUT"] > settings["CHANNEL_LAYER_BZPOPMIN_SECONDS"] + 1:
        raise ImproperlyConfigured(
            f"REDIS_LAYER_SOCKET_TIMEOUT ({settings['REDIS_LAYER_SOCKET_TIMEOUT']} s) must be above "
            f"{settings['CHANNEL_LAYER_BZPOPMIN_SECONDS'] + 1} s: channels_redis waits for messages with a BZPOPMIN "
            f"of {settings['CHANNEL_LAYER_BZPOPMIN_SECONDS']} s, and a shorter timeout drops every idle websocket."
        )


def _check_networks(name: str, networks: list[str]) -> None:
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {network!r} is not an IP network such as 10.0.0.0/8.") from exc


def _validate_dunning(retry_days: list[int], grace_days: int) -> None:
    if any(day < 1 for day in retry_days) or retry_days != sorted(set(retry_days)):
        raise ImproperlyConfigured(
            f"DUNNING_RETRY_DAYS ({retry_days}) must be rising whole days after the first failed renewal, e.g. 1,3,5."
        )
    if retry_days and grace_days < retry_days[-1]:
        # The first attempt comes at the earliest RENEWAL_LEAD_TIME_HOURS before the period ends;
        # a grace shorter than the last retry day leaves too little room for the retries.
        raise ImproperlyConfigured(
            f"DUNNING_GRACE_DAYS ({grace_days}) must cover the last dunning retry (day {retry_days[-1]} of "
            "DUNNING_RETRY_DAYS): the viewer keeps access while the card is retried."
        )


def _validate_task_lease(q_cluster: dict) -> None:
    # The ORM broker hands a task to another worker once `retry` seconds pass without an answer:
    # a lease shorter than the task's own time limit would run every long job twice at once.
    if q_cluster["retry"] <= q_cluster["timeout"]:
        raise ImproperlyConfigured(
            f"Q_RETRY ({q_cluster['retry']} s) must be above Q_TIMEOUT ({q_cluster['timeout']} s), well above, "
            "or django-q2 hands running tasks to a second worker."
        )


_LOCKOUT_PARAMETERS = {"username", "ip_address", "user_agent"}


def _parts(criterion: str) -> set[str]:
    return set(criterion.split("+"))


def _validate_admin_access(settings: dict) -> None:
    if settings["ADMIN_PASSWORD_MIN_LENGTH"] < 8:
        raise ImproperlyConfigured("ADMIN_PASSWORD_MIN_LENGTH must be at least 8: operators move money.")
    if settings["ADMIN_LOGIN_FAILURE_LIMIT"] < 1:
        raise ImproperlyConfigured("ADMIN_LOGIN_FAILURE_LIMIT must be at least 1 failed login.")
    if settings["ADMIN_LOGIN_COOLOFF_MINUTES"] < 0:
        raise ImproperlyConfigured("ADMIN_LOGIN_COOLOFF_MINUTES must be 0 (until reset) or more minutes.")
    if settings["ADMIN_LOGIN_USERNAME_FAILURE_LIMIT"] < settings["ADMIN_LOGIN_FAILURE_LIMIT"]:
        raise ImproperlyConfigured(
            f"ADMIN_LOGIN_USERNAME_FAILURE_LIMIT ({settings['ADMIN_LOGIN_USERNAME_FAILURE_LIMIT']}) must be at "
            f"least ADMIN_LOGIN_FAILURE_LIMIT ({settings['ADMIN_LOGIN_FAILURE_LIMIT']}): it counts one username's "
            "failures from all addresses together."
        )
    criteria = settings["ADMIN_LOGIN_LOCKOUT_BY"]
    if not criteria or any(not set(criterion.split("+")) <= _LOCKOUT_PARAMETERS for criterion in criteria):
        raise ImproperlyConfigured(
            f"ADMIN_LOGIN_LOCKOUT_BY ({','.join(criteria)}) must be criteria separated by commas, each of "
            "username, ip_address, user_agent or a +-joined combination of them, e.g. username+ip_address."
        )
    # The client writes its own User-Agent: counted by it alone, a guesser gets a fresh count per guess.
    if any("user_agent" in parts and not parts & {"username", "ip_address"} for parts in map(_parts, criteria)):
        raise ImproperlyConfigured(
            f"ADMIN_LOGIN_LOCKOUT_BY ({','.join(criteria)}): user_agent, which the client chooses, must be "
            "combined with username or ip_address, e.g. ip_address+user_agent."
        )
    _check_networks("ADMIN_TRUSTED_PROXIES", settings["ADMIN_TRUSTED_PROXIES"])


# A repeat of a viewer's money mutation under the same idempotency key returns the first result
# for at least this long (README, "Retention"): RETENTION_CLIENT_REQUEST_DAYS may not go below it.
CLIENT_REQUEST_KEY_PROMISE_DAYS = 30
# The outbox is delivered to the Auth service with retries for days: events stay at least this long.
EVENT_MIN_RETENTION_DAYS = 30
# YooKassa redelivers a notification for 24 hours: the inbox keeps it past that.
NOTIFICATION_MIN_RETENTION_DAYS = 2


def _validate_inbox_and_retention(settings: dict) -> None:
    untrusted = ["YOOKASSA_UNTRUSTED_RATE_LIMIT", "YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS"]
    untrusted.append("YOOKASSA_UNTRUSTED_TRACKED_NETWORKS")
    if any(settings[name] < 1 for name in untrusted):
        raise ImproperlyConfigured(
            "YOOKASSA_UNTRUSTED_RATE_LIMIT, YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS and "
            "YOOKASSA_UNTRUSTED_TRACKED_NETWORKS must be at least 1."
        )
    if settings["YOOKASSA_NOTIFICATION_STALE_MINUTES"] * 60 < max(300, 2 * settings["YOOKASSA_CALL_TIMEOUT"]):
        raise ImproperlyConfigured(
            "YOOKASSA_NOTIFICATION_STALE_MINUTES must be at least 5 and cover two YOOKASSA_CALL_TIMEOUTs: "
            "a notification still being processed would be marked interrupted."
        )
    # Mail composes the email of every event of its lookback window that has none: an email (or an
    # event) deleted while its event is still in that window would be composed and sent again.
    lookback_days = -(-settings["MAIL_EVENT_LOOKBACK_HOURS"] // 24)
    minimums = {
        "RETENTION_NOTIFICATION_DAYS": (NOTIFICATION_MIN_RETENTION_DAYS, "YooKassa redelivers for 24 hours"),
        "RETENTION_UNTRUSTED_NOTIFICATION_DAYS": (1, "a day at least"),
        "RETENTION_EVENT_DAYS": (
            max(EVENT_MIN_RETENTION_DAYS, 4 * lookback_days),
            "the outbox is delivered with retries for days, and mail reads MAIL_EVENT_LOOKBACK_HOURS of it",
        ),
        "RETENTION_EMAIL_DAYS": (4 * lookback_days, "mail would send an email again for an event it still reads"),
        "RETENTION_DELIVERY_DAYS": (
            4 * -(-settings["DELIVERY_EVENT_LOOKBACK_HOURS"] // 24),
            "an event still in DELIVERY_EVENT_LOOKBACK_HOURS would be delivered again",
        ),
        "RETENTION_CLIENT_REQUEST_DAYS": (
            CLIENT_REQUEST_KEY_PROMISE_DAYS,
            "a repeat under the same idempotency key returns the first result for that long",
        ),
    }
    for name, (minimum, why) in minimums.items():
        if settings[name] < minimum:
            raise ImproperlyConfigured(f"{name} ({settings[name]}) must be at least {minimum} days: {why}.")
    if not 1 <= settings["RETENTION_BATCH_SIZE"] <= 10_000:
        raise ImproperlyConfigured("RETENTION_BATCH_SIZE must be 1 to 10000 rows.")
