"""Settings shared by every environment, read from the process environment (12-factor).

Every value has a default that suits a zero-setup local run; `production.py` hardens them and
`validate()` at the bottom refuses configurations that must never start.
"""

import ipaddress
from pathlib import Path

import environ
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
    "django_q",
    "anymail",
    "strawberry_django",
    "plans",
    "billing",
    "webhooks",
    "mail",
    "graphql_api",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
    "BILLING_EVENT_LISTENERS", default=["graphql_api.live.on_billing_event", "mail.receivers.on_billing_event"]
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

# --- YooKassa -------------------------------------------------------------------------------

YOOKASSA_PRODUCTION_API_URL = "https://api.yookassa.ru/v3"
_real_shop_id = env.str("YOOKASSA_SHOP_ID", default="")
_real_secret_key = env.str("YOOKASSA_SECRET_KEY", default="")
YOOKASSA_HAS_REAL_CREDENTIALS = bool(_real_shop_id or _real_secret_key)
# Without credentials the sandbox, here; production.py insists on being told so (YOOKASSA_SANDBOX=true).
YOOKASSA_SANDBOX = env.bool("YOOKASSA_SANDBOX", default=not YOOKASSA_HAS_REAL_CREDENTIALS)

# The local run's web server listens here (Procfile.local); the sandbox notifies it there.
WEB_PORT = env.int("WEB_PORT", default=8000)

# The sandbox (sandbox/) is our emulator of YooKassa API v3. Its credentials are public test
# values that only it accepts; they are never real YooKassa secrets.
YOOKASSA_SANDBOX_HOST = env.str("YOOKASSA_SANDBOX_HOST", default="127.0.0.1")
YOOKASSA_SANDBOX_PORT = env.int("YOOKASSA_SANDBOX_PORT", default=8001)
# The sandbox as browsers reach it; empty = where it listens (so `runsandbox --port` moves it too).
YOOKASSA_SANDBOX_PUBLIC_URL = env.str("YOOKASSA_SANDBOX_PUBLIC_URL", default="")
YOOKASSA_SANDBOX_NOTIFICATION_URL = env.str(
    "YOOKASSA_SANDBOX_NOTIFICATION_URL", default=f"http://127.0.0.1:{WEB_PORT}/webhooks/yookassa/"
)
YOOKASSA_SANDBOX_STATE_FILE = env.str("YOOKASSA_SANDBOX_STATE_FILE", default=str(BASE_DIR / "var" / "sandbox.sqlite3"))

if YOOKASSA_SANDBOX:
    YOOKASSA_SHOP_ID = env.str("YOOKASSA_SANDBOX_SHOP_ID", default="100500")
    YOOKASSA_SECRET_KEY = env.str("YOOKASSA_SANDBOX_SECRET_KEY", default="test_sandbox_key")
    _default_api_url = f"{YOOKASSA_SANDBOX_PUBLIC_URL or f'http://127.0.0.1:{YOOKASSA_SANDBOX_PORT}'}/v3"
else:
    YOOKASSA_SHOP_ID = _real_shop_id
    YOOKASSA_SECRET_KEY = _real_secret_key
    _default_api_url = YOOKASSA_PRODUCTION_API_URL
YOOKASSA_API_URL = env.str("YOOKASSA_API_URL", default="") or _default_api_url
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

# --- Logging --------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")}},
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
    _validate_dunning(settings["DUNNING_RETRY_DAYS"], settings["DUNNING_GRACE_DAYS"])
    _validate_task_lease(settings["Q_CLUSTER"])


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
