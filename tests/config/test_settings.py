"""The settings, read from the environment with defaults for a zero-setup local run.

Django settings (and django-environ) are evaluated at import, so every configuration is loaded
in a fresh interpreter with a minimal, controlled environment. A developer's own `.env` is kept
out: base.py reads BASE_DIR/.env and fills in every variable the test leaves unset.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from billing.gateway import get_gateway

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = secrets.token_urlsafe(48)  # 64 characters
# What production needs besides YooKassa: a real SECRET_KEY and a way to verify viewers' tokens.
PRODUCTION = {"SECRET_KEY": GOOD_SECRET_KEY, "JWT_SECRET": secrets.token_urlsafe(32)}
REAL_CREDENTIALS = {"YOOKASSA_SHOP_ID": "123456", "YOOKASSA_SECRET_KEY": "live_not-a-real-secret"}
# Production without real credentials runs only on a sandbox it was told to use.
ON_THE_SANDBOX = {"YOOKASSA_SANDBOX": "true"}
SUBPROCESS_TIMEOUT = 60

# Prepended to every child's code: local.py's read_env() becomes a no-op, so a developer's .env
# (which would fill in DATABASE_URL, REDIS_URL, YOOKASSA_* ...) cannot change what is tested.
_IGNORE_DOTENV = "import environ\nenviron.Env.read_env = classmethod(lambda cls, *args, **kwargs: None)\n"

_PRINT_SETTINGS = """
import json
import django
django.setup()
from django.conf import settings
print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}, default=str))
"""


def run_python(code: str, *, settings_module: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `code` in a fresh interpreter at the repo root, with only PATH, HOME and `env`."""
    child_env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", str(REPO_ROOT)),
        "DJANGO_SETTINGS_MODULE": settings_module,
        **(env or {}),
    }
    completed = subprocess.run(
        [sys.executable, "-c", _IGNORE_DOTENV + code],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    return completed.returncode, completed.stdout, completed.stderr


def run_settings(settings_module: str, names: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Load `settings_module` under `env` and print the named settings as JSON."""
    return run_python(_PRINT_SETTINGS.format(names=names), settings_module=settings_module, env=env)


def load_settings(settings_module: str, names: list[str], env: dict[str, str] | None = None) -> dict:
    """The named settings of a configuration that must start."""
    returncode, stdout, stderr = run_settings(settings_module, names, env)
    assert returncode == 0, stderr
    return json.loads(stdout)


def assert_refuses(returncode: int, stderr: str, *fragments: str) -> None:
    assert returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured" in stderr
    for fragment in fragments:
        assert fragment in stderr


# --- local ------------------------------------------------------------------------------------


def test_local_settings_start_with_an_empty_environment_on_local_backends_and_the_sandbox():
    names = ["DEBUG", "DATABASES", "CHANNEL_LAYERS", "EMAIL_BACKEND", "YOOKASSA_SANDBOX", "YOOKASSA_API_URL"]

    loaded = load_settings("config.settings.local", names)

    assert loaded["DEBUG"] is True
    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(REPO_ROOT / "var" / "db.sqlite3")
    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert loaded["YOOKASSA_SANDBOX"] is True
    assert loaded["YOOKASSA_API_URL"] == "http://127.0.0.1:8001/v3"


def test_moving_the_local_ports_moves_everything_that_points_at_them():
    names = ["YOOKASSA_API_URL", "YOOKASSA_SANDBOX_PUBLIC_URL", "YOOKASSA_SANDBOX_NOTIFICATION_URL"]

    loaded = load_settings("config.settings.local", names, {"WEB_PORT": "9000", "YOOKASSA_SANDBOX_PORT": "9001"})

    assert loaded["YOOKASSA_API_URL"] == "http://127.0.0.1:9001/v3"
    # Unset: runsandbox hands out payment pages where it really listens (its --host and --port).
    assert loaded["YOOKASSA_SANDBOX_PUBLIC_URL"] == ""
    assert loaded["YOOKASSA_SANDBOX_NOTIFICATION_URL"] == "http://127.0.0.1:9000/webhooks/yookassa/"


def test_database_url_configures_postgresql_without_connecting():
    env = {"DATABASE_URL": "postgres://u:p@db.example:5432/billing"}

    loaded = load_settings("config.settings.local", ["DATABASES"], env)

    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "billing"
    assert database["HOST"] == "db.example"
    assert database["PORT"] == 5432
    assert database["USER"] == "u"
    assert "transaction_mode" not in database.get("OPTIONS", {})


def test_redis_url_configures_a_bounded_redis_channel_layer_and_a_redis_cache_both_with_timeouts():
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0"}

    loaded = load_settings("config.settings.local", ["CHANNEL_LAYERS", "CACHES"], env)

    layer = loaded["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "graphql_api.channel_layer.BoundedRedisChannelLayer"
    # Above channels_redis' 5 s BZPOPMIN, or every idle websocket would be dropped (channels_redis#422).
    assert layer["CONFIG"]["hosts"] == [
        {
            "address": "redis://127.0.0.1:6379/0",
            "socket_connect_timeout": 0.5,
            "socket_timeout": 10.0,
            "max_connections": 20,
            "pool_timeout": 10.0,
        }
    ]
    cache = loaded["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/0"
    assert cache["OPTIONS"] == {"socket_connect_timeout": 0.5, "socket_timeout": 0.25}


def test_a_channel_layer_socket_timeout_within_its_bzpopmin_refuses_to_start():
    env = {**PRODUCTION, "REDIS_LAYER_SOCKET_TIMEOUT": "5"}

    returncode, _, stderr = run_settings("config.settings.production", ["REDIS_LAYER_SOCKET_TIMEOUT"], env)

    assert_refuses(returncode, stderr, "REDIS_LAYER_SOCKET_TIMEOUT (5.0 s) must be above 6 s")


@pytest.mark.parametrize("name", ["LIVE_MAX_SOCKETS_PER_VIEWER", "LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER"])
def test_a_live_cap_below_one_refuses_to_start(name):
    returncode, _, stderr = run_settings("config.settings.production", [name], {**PRODUCTION, name: "0"})

    assert_refuses(returncode, stderr, f"{name} must be at least 1")


def test_mailgun_api_key_switches_email_to_anymail_mailgun():
    env = {"MAILGUN_API_KEY": "key-not-a-real-mailgun-key"}

    loaded = load_settings("config.settings.local", ["EMAIL_BACKEND", "ANYMAIL"], env)

    assert loaded["EMAIL_BACKEND"] == "anymail.backends.mailgun.EmailBackend"
    assert loaded["ANYMAIL"]["MAILGUN_API_KEY"] == "key-not-a-real-mailgun-key"


def test_a_yookassa_call_is_bounded_as_a_whole_by_connect_plus_read_unless_told():
    names = ["YOOKASSA_CONNECT_TIMEOUT", "YOOKASSA_READ_TIMEOUT", "YOOKASSA_CALL_TIMEOUT"]

    default = load_settings("config.settings.local", names)
    following = load_settings("config.settings.local", names, {"YOOKASSA_READ_TIMEOUT": "30"})
    explicit = load_settings("config.settings.local", names, {"YOOKASSA_CALL_TIMEOUT": "7.5"})

    assert default == {"YOOKASSA_CONNECT_TIMEOUT": 5.0, "YOOKASSA_READ_TIMEOUT": 15.0, "YOOKASSA_CALL_TIMEOUT": 20.0}
    assert following["YOOKASSA_CALL_TIMEOUT"] == 35.0
    assert explicit["YOOKASSA_CALL_TIMEOUT"] == 7.5


def test_a_yookassa_call_timeout_of_zero_refuses_to_start():
    returncode, _, stderr = run_settings("config.settings.local", ["DEBUG"], {"YOOKASSA_CALL_TIMEOUT": "0"})

    assert_refuses(returncode, stderr, "YOOKASSA_CALL_TIMEOUT must be a positive number of seconds")


# --- production: SECRET_KEY -------------------------------------------------------------------


def test_production_refuses_to_start_without_a_secret_key():
    returncode, _, stderr = run_settings("config.settings.production", ["DEBUG"])

    assert_refuses(returncode, stderr, "SECRET_KEY")


def test_production_refuses_to_start_with_a_short_secret_key():
    returncode, _, stderr = run_settings("config.settings.production", ["DEBUG"], {"SECRET_KEY": "short"})

    assert_refuses(returncode, stderr, "SECRET_KEY")


def test_production_refuses_to_start_with_a_long_django_insecure_secret_key():
    insecure_key = "django-insecure-" + secrets.token_hex(22)
    assert len(insecure_key) == 60

    returncode, _, stderr = run_settings("config.settings.production", ["DEBUG"], {"SECRET_KEY": insecure_key})

    assert_refuses(returncode, stderr, "SECRET_KEY")


def test_production_starts_with_a_random_64_character_secret_key():
    assert len(GOOD_SECRET_KEY) == 64

    loaded = load_settings(
        "config.settings.production", ["DEBUG", "SECRET_KEY", "SECURE_SSL_REDIRECT"], {**PRODUCTION, **ON_THE_SANDBOX}
    )

    assert loaded["DEBUG"] is False
    assert loaded["SECRET_KEY"] == GOOD_SECRET_KEY
    assert loaded["SECURE_SSL_REDIRECT"] is True


def test_production_refuses_to_start_without_a_way_to_verify_viewers():
    env = {"SECRET_KEY": GOOD_SECRET_KEY, "JWT_SECRET": "too-short"}

    returncode, _, stderr = run_settings("config.settings.production", ["JWT_SECRET"], env)

    assert_refuses(returncode, stderr, "Viewers cannot be authenticated")


def test_production_verifies_viewers_with_rs256_when_given_a_public_key():
    env = {
        "SECRET_KEY": GOOD_SECRET_KEY,
        "JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----",
        **ON_THE_SANDBOX,
    }

    loaded = load_settings("config.settings.production", ["JWT_ALGORITHM", "JWT_PUBLIC_KEY"], env)

    assert loaded["JWT_ALGORITHM"] == "RS256"
    assert loaded["JWT_PUBLIC_KEY"].splitlines()[1] == "MIIB"


def test_production_refuses_a_live_payment_recheck_interval_that_is_not_positive():
    env = {**PRODUCTION, "LIVE_PAYMENT_RECHECK_SECONDS": "0"}

    returncode, _, stderr = run_settings("config.settings.production", ["LIVE_PAYMENT_RECHECK_SECONDS"], env)

    assert_refuses(returncode, stderr, "LIVE_PAYMENT_RECHECK_SECONDS must be a positive number")


def test_production_refuses_to_start_with_debug_on():
    env = {**PRODUCTION, "DEBUG": "true"}

    returncode, _, stderr = run_settings("config.settings.production", ["DEBUG"], env)

    assert_refuses(returncode, stderr, "DEBUG is never on in production")


# --- production: HSTS and the security headers -------------------------------------------------

ONE_YEAR = 365 * 24 * 60 * 60
# What docker-compose.yml sets: plain HTTP, no TLS proxy in front.
COMPOSE_TRANSPORT = {"SECURE_SSL_REDIRECT": "false", "SECURE_COOKIES": "false"}
HSTS_NAMES = ["SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"]

_GET = """
import json
import django
django.setup()
from django.test import Client
response = Client(HTTP_HOST="localhost").get({path!r}, secure={secure!r}, HTTP_ACCEPT="text/html")
print(json.dumps({{"status": response.status_code, "headers": dict(response.headers), "body": response.text}}))
"""


def get(settings_module: str, path: str, env: dict[str, str], *, secure: bool = False) -> dict:
    """GET `path` through the whole middleware stack of `settings_module`, in a fresh interpreter."""
    returncode, stdout, stderr = run_python(
        _GET.format(path=path, secure=secure), settings_module=settings_module, env=env
    )
    assert returncode == 0, stderr
    return json.loads(stdout)


def test_production_sends_hsts_for_a_year_by_default_without_subdomains_or_preload():
    loaded = load_settings("config.settings.production", HSTS_NAMES, {**PRODUCTION, **ON_THE_SANDBOX})

    assert loaded == {
        "SECURE_HSTS_SECONDS": ONE_YEAR,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }


def test_production_answers_https_with_hsts_and_the_compose_stacks_plain_http_as_it_did():
    env = {**PRODUCTION, **ON_THE_SANDBOX, **COMPOSE_TRANSPORT}

    over_https = get("config.settings.production", "/no-such-page", env, secure=True)
    over_http = get("config.settings.production", "/no-such-page", env)

    assert over_https["status"] == 404
    assert over_https["headers"]["Strict-Transport-Security"] == f"max-age={ONE_YEAR}"
    # No redirect to https:// and no HSTS: the plain-HTTP stack keeps working (browsers would
    # ignore HSTS over plain HTTP anyway).
    assert over_http["status"] == 404
    assert "Strict-Transport-Security" not in over_http["headers"]


def test_hsts_seconds_zero_turns_hsts_off():
    env = {**PRODUCTION, **ON_THE_SANDBOX, "SECURE_HSTS_SECONDS": "0"}

    loaded = load_settings("config.settings.production", HSTS_NAMES, env)
    over_https = get("config.settings.production", "/no-such-page", env, secure=True)

    assert loaded["SECURE_HSTS_SECONDS"] == 0
    assert over_https["status"] == 404
    assert "Strict-Transport-Security" not in over_https["headers"]


def test_hsts_for_subdomains_with_preload_is_sent_when_asked_for():
    env = {**PRODUCTION, **ON_THE_SANDBOX, "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "SECURE_HSTS_PRELOAD": "true"}

    over_https = get("config.settings.production", "/no-such-page", env, secure=True)

    assert over_https["headers"]["Strict-Transport-Security"] == f"max-age={ONE_YEAR}; includeSubDomains; preload"


def test_a_negative_hsts_max_age_refuses_to_start():
    env = {**PRODUCTION, **ON_THE_SANDBOX, "SECURE_HSTS_SECONDS": "-1"}

    returncode, _, stderr = run_settings("config.settings.production", HSTS_NAMES, env)

    assert_refuses(returncode, stderr, "SECURE_HSTS_SECONDS is a number of seconds, 0 or more")


@pytest.mark.parametrize(
    "hsts",
    [{"SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"}, {"SECURE_HSTS_SECONDS": str(ONE_YEAR - 1)}],
    ids=["without-subdomains", "under-a-year"],
)
def test_hsts_preload_that_preload_lists_would_refuse_refuses_to_start(hsts):
    env = {**PRODUCTION, **ON_THE_SANDBOX, "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "SECURE_HSTS_PRELOAD": "true"}

    returncode, _, stderr = run_settings("config.settings.production", HSTS_NAMES, {**env, **hsts})

    assert_refuses(returncode, stderr, "SECURE_HSTS_PRELOAD needs SECURE_HSTS_INCLUDE_SUBDOMAINS=true")


def test_the_content_security_policy_leaves_out_graphiql_only_while_debug_serves_it():
    local = load_settings("config.settings.local", ["CONTENT_SECURITY_POLICY"])
    production = load_settings(
        "config.settings.production", ["CONTENT_SECURITY_POLICY"], {**PRODUCTION, **ON_THE_SANDBOX}
    )

    assert local["CONTENT_SECURITY_POLICY"]["EXCLUDE_URL_PREFIXES"] == ["/graphql/"]
    assert production["CONTENT_SECURITY_POLICY"]["EXCLUDE_URL_PREFIXES"] == []


def test_the_local_run_serves_graphiql_without_a_policy_and_the_example_page_with_its_nonce():
    graphiql = get("config.settings.local", "/graphql/", {})
    example = get("config.settings.local", "/examples/checkout/", {})

    assert graphiql["status"] == 200
    assert "graphiql" in graphiql["body"].lower()
    assert "Content-Security-Policy" not in graphiql["headers"]
    assert example["status"] == 200
    [nonce] = set(re.findall(r'<script nonce="([^"]+)">', example["body"]))
    assert f"'nonce-{nonce}'" in example["headers"]["Content-Security-Policy"]


# --- production: YooKassa credentials and the sandbox ----------------------------------------


def test_real_yookassa_credentials_turn_the_sandbox_off_and_target_the_production_api():
    env = {**PRODUCTION, **REAL_CREDENTIALS}

    loaded = load_settings(
        "config.settings.production",
        ["YOOKASSA_SANDBOX", "YOOKASSA_API_URL", "YOOKASSA_SHOP_ID", "YOOKASSA_SECRET_KEY"],
        env,
    )

    assert loaded["YOOKASSA_SANDBOX"] is False
    assert loaded["YOOKASSA_API_URL"] == "https://api.yookassa.ru/v3"
    assert loaded["YOOKASSA_SHOP_ID"] == REAL_CREDENTIALS["YOOKASSA_SHOP_ID"]
    assert loaded["YOOKASSA_SECRET_KEY"] == REAL_CREDENTIALS["YOOKASSA_SECRET_KEY"]


def test_sandbox_enabled_alongside_real_credentials_refuses_to_start():
    env = {**PRODUCTION, **REAL_CREDENTIALS, "YOOKASSA_SANDBOX": "true"}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_SANDBOX"], env)

    assert_refuses(returncode, stderr, "the sandbox is never used with real credentials")


def test_real_credentials_are_never_sent_over_plain_http():
    env = {**PRODUCTION, **REAL_CREDENTIALS, "YOOKASSA_API_URL": "http://127.0.0.1:8001/v3"}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_API_URL"], env)

    assert_refuses(returncode, stderr, "YOOKASSA_API_URL must start with https://")


def test_only_a_yookassa_shop_id_refuses_to_start():
    env = {**PRODUCTION, "YOOKASSA_SHOP_ID": REAL_CREDENTIALS["YOOKASSA_SHOP_ID"]}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_SANDBOX"], env)

    assert_refuses(returncode, stderr, "Set both YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY")


def test_only_a_yookassa_secret_key_refuses_to_start():
    env = {**PRODUCTION, "YOOKASSA_SECRET_KEY": REAL_CREDENTIALS["YOOKASSA_SECRET_KEY"]}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_SANDBOX"], env)

    assert_refuses(returncode, stderr, "Set both YOOKASSA_SHOP_ID and YOOKASSA_SECRET_KEY")


def test_production_without_credentials_refuses_to_fall_back_to_the_sandbox():
    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_SANDBOX"], PRODUCTION)

    assert_refuses(
        returncode,
        stderr,
        "No YooKassa credentials are configured",
        "or YOOKASSA_SANDBOX=true to run against the YooKassa sandbox on purpose",
    )


def test_production_runs_on_the_sandbox_when_told_to():
    names = ["YOOKASSA_SANDBOX", "YOOKASSA_API_URL", "YOOKASSA_SHOP_ID", "YOOKASSA_TRUSTED_NETWORKS"]

    loaded = load_settings("config.settings.production", names, {**PRODUCTION, **ON_THE_SANDBOX})

    assert loaded["YOOKASSA_SANDBOX"] is True
    assert loaded["YOOKASSA_API_URL"] == "http://127.0.0.1:8001/v3"
    assert loaded["YOOKASSA_SHOP_ID"] == "100500"
    assert "10.0.0.0/8" in loaded["YOOKASSA_TRUSTED_NETWORKS"]


def test_production_with_real_credentials_trusts_only_yookassas_networks():
    loaded = load_settings(
        "config.settings.production", ["YOOKASSA_TRUSTED_NETWORKS"], {**PRODUCTION, **REAL_CREDENTIALS}
    )

    assert "185.71.76.0/27" in loaded["YOOKASSA_TRUSTED_NETWORKS"]
    assert not {"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} & set(
        loaded["YOOKASSA_TRUSTED_NETWORKS"]
    )


def test_sandbox_off_without_credentials_refuses_to_start():
    env = {**PRODUCTION, "YOOKASSA_SANDBOX": "false"}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_SANDBOX"], env)

    assert_refuses(returncode, stderr, "YOOKASSA_SANDBOX is off but no YooKassa credentials are configured")


# --- production: where notifications come from -----------------------------------------------


def test_production_trusts_no_proxy_unless_told_and_reads_the_ones_it_is_told():
    untold = load_settings("config.settings.production", ["YOOKASSA_TRUSTED_PROXIES"], {**PRODUCTION, **ON_THE_SANDBOX})
    told = load_settings(
        "config.settings.production",
        ["YOOKASSA_TRUSTED_PROXIES"],
        {**PRODUCTION, **ON_THE_SANDBOX, "YOOKASSA_TRUSTED_PROXIES": "10.0.0.0/24,2001:db8::1"},
    )

    assert untold["YOOKASSA_TRUSTED_PROXIES"] == []
    assert told["YOOKASSA_TRUSTED_PROXIES"] == ["10.0.0.0/24", "2001:db8::1"]


@pytest.mark.parametrize("vat_code", ["0", "13", "-1"])
def test_a_vat_code_yookassa_does_not_have_refuses_to_start(vat_code):
    env = {**PRODUCTION, **ON_THE_SANDBOX, "YOOKASSA_RECEIPTS": "true", "YOOKASSA_VAT_CODE": vat_code}

    returncode, _, stderr = run_settings("config.settings.production", ["YOOKASSA_VAT_CODE"], env)

    assert_refuses(returncode, stderr, "YOOKASSA_VAT_CODE is one of YooKassa's VAT codes, 1 to 12")


@pytest.mark.parametrize("vat_code", ["1", "12"])
def test_vat_codes_from_1_to_12_start(vat_code):
    env = {**PRODUCTION, **ON_THE_SANDBOX, "YOOKASSA_RECEIPTS": "true", "YOOKASSA_VAT_CODE": vat_code}

    loaded = load_settings("config.settings.production", ["YOOKASSA_VAT_CODE"], env)

    assert loaded["YOOKASSA_VAT_CODE"] == int(vat_code)


@pytest.mark.parametrize("name", ["YOOKASSA_TRUSTED_NETWORKS", "YOOKASSA_TRUSTED_PROXIES"])
def test_a_trusted_network_that_is_not_a_network_refuses_to_start(name):
    env = {**PRODUCTION, **ON_THE_SANDBOX, name: "185.71.76.0/27,185.71.76.0/33"}

    returncode, _, stderr = run_settings("config.settings.production", [name], env)

    assert_refuses(returncode, stderr, f"{name}: '185.71.76.0/33' is not an IP network")


# --- test settings ----------------------------------------------------------------------------


def test_test_settings_run_tasks_synchronously_with_in_process_mail_and_channels():
    names = ["DEBUG", "Q_CLUSTER", "EMAIL_BACKEND", "CHANNEL_LAYERS"]

    loaded = load_settings("config.settings.test", names)

    assert loaded["DEBUG"] is False
    assert loaded["Q_CLUSTER"]["sync"] is True
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.locmem.EmailBackend"
    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


# --- where the emulator is installed (sandbox/, issue 10) -------------------------------------

_INSTALLED_AND_TEMPLATES = """
import json
import django
django.setup()
from django.conf import settings
from django.template import engines
print(json.dumps({"apps": settings.INSTALLED_APPS, "dirs": [str(d) for d in engines["django"].template_dirs]}))
"""
SANDBOX_TEMPLATES = str(REPO_ROOT / "sandbox" / "templates")
EMULATOR_ONLY = ["WEB_PORT", "YOOKASSA_SANDBOX_HOST", "YOOKASSA_SANDBOX_PORT", "YOOKASSA_SANDBOX_STATE_FILE"]


def installed_and_templates(settings_module: str, env: dict[str, str]) -> dict:
    returncode, stdout, stderr = run_python(_INSTALLED_AND_TEMPLATES, settings_module=settings_module, env=env)
    assert returncode == 0, stderr
    return json.loads(stdout)


@pytest.mark.parametrize("env", [{**PRODUCTION, **ON_THE_SANDBOX}, {**PRODUCTION, **REAL_CREDENTIALS}])
def test_production_lists_no_sandbox_app_and_has_no_sandbox_templates_even_when_on_the_sandbox(env):
    loaded = installed_and_templates("config.settings.production", env)

    assert "sandbox" not in loaded["apps"]
    assert SANDBOX_TEMPLATES not in loaded["dirs"]
    assert not [d for d in loaded["dirs"] if d.startswith(str(REPO_ROOT / "sandbox"))]
    # The templates of the service's own apps are there: the probe sees app directories at all.
    assert str(REPO_ROOT / "admin_access" / "templates") in loaded["dirs"]


@pytest.mark.parametrize(
    ("settings_module", "env"),
    [
        ("config.settings.local", {}),
        ("config.settings.test", {}),
        ("config.settings.sandbox", {**PRODUCTION, **ON_THE_SANDBOX}),
    ],
)
def test_the_settings_where_the_emulator_runs_list_its_app_and_templates(settings_module, env):
    loaded = installed_and_templates(settings_module, env)

    assert "sandbox" in loaded["apps"]
    assert SANDBOX_TEMPLATES in loaded["dirs"]


def test_production_has_none_of_the_emulators_own_settings():
    returncode, stdout, stderr = run_python(
        "import django, json\ndjango.setup()\nfrom django.conf import settings\n"
        f"print(json.dumps([name for name in {EMULATOR_ONLY!r} if hasattr(settings, name)]))\n",
        settings_module="config.settings.production",
        env={**PRODUCTION, **ON_THE_SANDBOX},
    )

    assert returncode == 0, stderr
    assert json.loads(stdout) == []


def test_production_on_a_sandbox_talks_to_it_at_the_api_url_it_is_given():
    # Compose's web and worker: the sandbox service by name, without the emulator's settings.
    env = {**PRODUCTION, **ON_THE_SANDBOX, "YOOKASSA_SANDBOX_API_URL": "http://sandbox:8001/v3"}

    loaded = load_settings("config.settings.production", ["YOOKASSA_API_URL", "YOOKASSA_SECRET_KEY"], env)

    assert loaded["YOOKASSA_API_URL"] == "http://sandbox:8001/v3"
    assert loaded["YOOKASSA_SECRET_KEY"] == "test_sandbox_key"


def test_production_with_real_credentials_ignores_the_sandbox_api_url():
    env = {**PRODUCTION, **REAL_CREDENTIALS, "YOOKASSA_SANDBOX_API_URL": "http://sandbox:8001/v3"}

    loaded = load_settings("config.settings.production", ["YOOKASSA_API_URL"], env)

    assert loaded["YOOKASSA_API_URL"] == "https://api.yookassa.ru/v3"


def test_the_compose_sandbox_settings_refuse_like_production_without_being_told_and_beside_real_credentials():
    returncode, _, stderr = run_settings("config.settings.sandbox", ["YOOKASSA_SANDBOX"], PRODUCTION)
    assert_refuses(returncode, stderr, "No YooKassa credentials are configured")

    env = {**PRODUCTION, **REAL_CREDENTIALS, "YOOKASSA_SANDBOX": "true"}
    returncode, _, stderr = run_settings("config.settings.sandbox", ["YOOKASSA_SANDBOX"], env)
    assert_refuses(returncode, stderr, "the sandbox is never used with real credentials")


def test_the_compose_sandbox_hands_out_pages_at_its_public_url_and_notifies_web():
    names = ["YOOKASSA_SANDBOX_PUBLIC_URL", "YOOKASSA_SANDBOX_NOTIFICATION_URL", "YOOKASSA_API_URL"]
    env = {
        **PRODUCTION,
        **ON_THE_SANDBOX,
        "YOOKASSA_SANDBOX_API_URL": "",
        "YOOKASSA_SANDBOX_PUBLIC_URL": "http://localhost:8001",
        "YOOKASSA_SANDBOX_NOTIFICATION_URL": "http://web:8000/webhooks/yookassa/",
    }

    loaded = load_settings("config.settings.sandbox", names, env)

    assert loaded["YOOKASSA_SANDBOX_PUBLIC_URL"] == "http://localhost:8001"
    assert loaded["YOOKASSA_SANDBOX_NOTIFICATION_URL"] == "http://web:8000/webhooks/yookassa/"
    # Its own API, as runsandbox compares it: no warning of a mismatch.
    assert loaded["YOOKASSA_API_URL"] == "http://localhost:8001/v3"


# --- runsandbox and the gateway ---------------------------------------------------------------


def test_runsandbox_refuses_when_real_credentials_are_configured(tmp_path):
    # Port 0 and a scratch state file: were it to start anyway, it would touch nothing of the developer's.
    argv = ["manage.py", "runsandbox", "--port", "0", "--state-file", str(tmp_path / "sandbox.sqlite3")]
    code = f"import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_path('manage.py', run_name='__main__')\n"

    returncode, _, stderr = run_python(code, settings_module="config.settings.local", env=REAL_CREDENTIALS)

    assert returncode != 0
    assert "CommandError" in stderr
    assert "the sandbox never runs beside them" in stderr


def test_get_gateway_follows_overridden_yookassa_settings(settings):
    settings.YOOKASSA_API_URL = "http://first.example/v3"
    first = get_gateway()

    settings.YOOKASSA_API_URL = "http://second.example/v3"
    second = get_gateway()

    settings.YOOKASSA_CALL_TIMEOUT = 3.5
    third = get_gateway()

    assert first._client.config.api_url == "http://first.example/v3"
    assert third._client.config.call_timeout == 3.5
    assert second._client.config.api_url == "http://second.example/v3"


# --- dunning and the task queue ------------------------------------------------------------


def test_the_default_dunning_schedule_and_task_lease_start():
    names = ["DUNNING_RETRY_DAYS", "DUNNING_GRACE_DAYS", "Q_CLUSTER"]

    loaded = load_settings("config.settings.local", names)

    assert loaded["DUNNING_RETRY_DAYS"] == [1, 3, 5]
    assert loaded["DUNNING_GRACE_DAYS"] == 7
    assert loaded["Q_CLUSTER"]["retry"] > loaded["Q_CLUSTER"]["timeout"]


def test_a_grace_period_shorter_than_the_last_retry_refuses_to_start():
    env = {"DUNNING_RETRY_DAYS": "1,3,5", "DUNNING_GRACE_DAYS": "4"}

    returncode, _, stderr = run_settings("config.settings.local", ["DEBUG"], env)

    assert_refuses(returncode, stderr, "DUNNING_GRACE_DAYS (4) must cover the last dunning retry (day 5")


def test_retry_days_out_of_order_refuse_to_start():
    returncode, _, stderr = run_settings("config.settings.local", ["DEBUG"], {"DUNNING_RETRY_DAYS": "3,1"})

    assert_refuses(returncode, stderr, "DUNNING_RETRY_DAYS ([3, 1]) must be rising whole days")


def test_a_task_lease_not_above_the_task_timeout_refuses_to_start():
    env = {"Q_TIMEOUT": "300", "Q_RETRY": "300"}

    returncode, _, stderr = run_settings("config.settings.local", ["DEBUG"], env)

    assert_refuses(returncode, stderr, "Q_RETRY (300 s) must be above Q_TIMEOUT (300 s)")


@pytest.mark.parametrize("seconds", ["0", "300", "28799"])
def test_production_refuses_a_mailgun_webhook_window_shorter_than_mailguns_retries(seconds):
    env = {**PRODUCTION, "MAILGUN_WEBHOOK_MAX_AGE_SECONDS": seconds}

    returncode, _, stderr = run_settings("config.settings.production", ["MAILGUN_WEBHOOK_MAX_AGE_SECONDS"], env)

    assert_refuses(returncode, stderr, f"MAILGUN_WEBHOOK_MAX_AGE_SECONDS ({seconds}) must be at least 28800 seconds")


def test_the_mailgun_webhook_window_covers_mailguns_retries_by_default():
    loaded = load_settings(
        "config.settings.production", ["MAILGUN_WEBHOOK_MAX_AGE_SECONDS"], {**PRODUCTION, **ON_THE_SANDBOX}
    )

    assert loaded == {"MAILGUN_WEBHOOK_MAX_AGE_SECONDS": 32400}


# --- inbox limits and retention -------------------------------------------------------------------


def test_the_retention_ages_default_above_the_windows_that_read_the_rows():
    names = [
        "RETENTION_NOTIFICATION_DAYS",
        "RETENTION_UNTRUSTED_NOTIFICATION_DAYS",
        "RETENTION_EVENT_DAYS",
        "RETENTION_EMAIL_DAYS",
        "RETENTION_CLIENT_REQUEST_DAYS",
        "RETENTION_BATCH_SIZE",
        "YOOKASSA_UNTRUSTED_RATE_LIMIT",
        "YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS",
        "YOOKASSA_UNTRUSTED_TRACKED_NETWORKS",
        "YOOKASSA_NOTIFICATION_STALE_MINUTES",
    ]

    loaded = load_settings("config.settings.production", names, {**PRODUCTION, **ON_THE_SANDBOX})

    assert loaded == {
        "RETENTION_NOTIFICATION_DAYS": 90,
        "RETENTION_UNTRUSTED_NOTIFICATION_DAYS": 30,
        "RETENTION_EVENT_DAYS": 180,
        "RETENTION_EMAIL_DAYS": 180,
        "RETENTION_CLIENT_REQUEST_DAYS": 90,
        "RETENTION_BATCH_SIZE": 1000,
        "YOOKASSA_UNTRUSTED_RATE_LIMIT": 30,
        "YOOKASSA_UNTRUSTED_RATE_WINDOW_SECONDS": 60,
        "YOOKASSA_UNTRUSTED_TRACKED_NETWORKS": 100,
        "YOOKASSA_NOTIFICATION_STALE_MINUTES": 15,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RETENTION_CLIENT_REQUEST_DAYS": "29"}, "RETENTION_CLIENT_REQUEST_DAYS (29) must be at least 30 days"),
        ({"RETENTION_EVENT_DAYS": "29"}, "RETENTION_EVENT_DAYS (29) must be at least 30 days"),
        (
            {"RETENTION_EVENT_DAYS": "39", "MAIL_EVENT_LOOKBACK_HOURS": "240"},
            "RETENTION_EVENT_DAYS (39) must be at least 40 days",
        ),
        ({"RETENTION_EMAIL_DAYS": "3"}, "RETENTION_EMAIL_DAYS (3) must be at least 4 days"),
        ({"RETENTION_NOTIFICATION_DAYS": "1"}, "RETENTION_NOTIFICATION_DAYS (1) must be at least 2 days"),
        ({"RETENTION_BATCH_SIZE": "0"}, "RETENTION_BATCH_SIZE must be 1 to 10000 rows"),
        ({"YOOKASSA_UNTRUSTED_RATE_LIMIT": "0"}, "YOOKASSA_UNTRUSTED_RATE_LIMIT"),
        ({"YOOKASSA_UNTRUSTED_TRACKED_NETWORKS": "0"}, "YOOKASSA_UNTRUSTED_TRACKED_NETWORKS"),
        ({"YOOKASSA_NOTIFICATION_STALE_MINUTES": "1"}, "YOOKASSA_NOTIFICATION_STALE_MINUTES must be at least 5"),
    ],
    ids=[
        "keys-below-the-promise",
        "events-below-the-delivery-retries",
        "events-below-four-mail-lookbacks",
        "emails-inside-the-mail-lookback",
        "notifications-inside-yookassas-redelivery",
        "no-batch",
        "no-rate",
        "no-tracked-networks",
        "stale-before-a-call-could-end",
    ],
)
def test_retention_ages_that_break_a_window_refuse_to_start(env, message):
    returncode, _, stderr = run_settings("config.settings.local", ["DEBUG"], env)

    assert_refuses(returncode, stderr, message)
