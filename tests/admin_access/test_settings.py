"""The admin's login settings, read from the environment and refused when they make no sense."""

import pytest

from tests.config.test_settings import ON_THE_SANDBOX, PRODUCTION, assert_refuses, load_settings, run_settings

NAMES = [
    "AUTH_PASSWORD_VALIDATORS",
    "AXES_FAILURE_LIMIT",
    "AXES_COOLOFF_TIME",
    "AXES_LOCKOUT_PARAMETERS",
    "ADMIN_TRUSTED_PROXIES",
    "ADMIN_OTP_REQUIRED",
    "OTP_TOTP_ISSUER",
    "MIDDLEWARE",
    "AUTHENTICATION_BACKENDS",
]


def test_production_defaults():
    loaded = load_settings("config.settings.production", NAMES, {**PRODUCTION, **ON_THE_SANDBOX})

    validators = loaded["AUTH_PASSWORD_VALIDATORS"]
    assert [validator["NAME"].rsplit(".", 1)[1] for validator in validators] == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    ]
    assert validators[1]["OPTIONS"] == {"min_length": 12}
    assert loaded["AXES_FAILURE_LIMIT"] == 5
    assert loaded["AXES_COOLOFF_TIME"] == 0.25
    assert loaded["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]
    assert loaded["ADMIN_TRUSTED_PROXIES"] == []
    assert loaded["ADMIN_OTP_REQUIRED"] is False
    assert loaded["OTP_TOTP_ISSUER"] == "Cinema billing"
    middleware = loaded["MIDDLEWARE"]
    assert middleware[-1] == "axes.middleware.AxesMiddleware"
    assert middleware.index("django_otp.middleware.OTPMiddleware") > middleware.index(
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    )
    assert loaded["AUTHENTICATION_BACKENDS"][0] == "admin_access.backends.AdminLoginLockoutBackend"


def test_the_environment_sets_them():
    loaded = load_settings(
        "config.settings.production",
        NAMES,
        {
            **PRODUCTION,
            **ON_THE_SANDBOX,
            "ADMIN_PASSWORD_MIN_LENGTH": "16",
            "ADMIN_LOGIN_FAILURE_LIMIT": "3",
            "ADMIN_LOGIN_COOLOFF_MINUTES": "0",
            "ADMIN_LOGIN_LOCKOUT_BY": "username+ip_address,ip_address+user_agent",
            "YOOKASSA_TRUSTED_PROXIES": "10.0.0.0/24",
            "ADMIN_OTP_REQUIRED": "true",
            "ADMIN_OTP_ISSUER": "Cinema billing (staging)",
        },
    )

    assert loaded["AUTH_PASSWORD_VALIDATORS"][1]["OPTIONS"] == {"min_length": 16}
    assert loaded["AXES_FAILURE_LIMIT"] == 3
    assert loaded["AXES_COOLOFF_TIME"] is None  # locked until axes_reset
    assert loaded["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"], ["ip_address", "user_agent"]]
    assert loaded["ADMIN_TRUSTED_PROXIES"] == ["10.0.0.0/24"]  # the webhook's proxies, unless told otherwise
    assert loaded["ADMIN_OTP_REQUIRED"] is True
    assert loaded["OTP_TOTP_ISSUER"] == "Cinema billing (staging)"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ADMIN_PASSWORD_MIN_LENGTH", "6", "ADMIN_PASSWORD_MIN_LENGTH must be at least 8"),
        ("ADMIN_LOGIN_FAILURE_LIMIT", "0", "ADMIN_LOGIN_FAILURE_LIMIT must be at least 1"),
        ("ADMIN_LOGIN_COOLOFF_MINUTES", "-1", "ADMIN_LOGIN_COOLOFF_MINUTES must be 0"),
        ("ADMIN_LOGIN_LOCKOUT_BY", "username+ip", "ADMIN_LOGIN_LOCKOUT_BY (username+ip)"),
        # The client writes its own User-Agent: alone it would give a guesser a new count per guess.
        ("ADMIN_LOGIN_LOCKOUT_BY", "user_agent", "ADMIN_LOGIN_LOCKOUT_BY (user_agent)"),
        ("ADMIN_LOGIN_LOCKOUT_BY", "username+ip_address,user_agent", "with username or ip_address"),
        ("ADMIN_LOGIN_USERNAME_FAILURE_LIMIT", "4", "ADMIN_LOGIN_USERNAME_FAILURE_LIMIT (4) must be at least"),
        ("ADMIN_TRUSTED_PROXIES", "10.0.0.0/33", "ADMIN_TRUSTED_PROXIES: '10.0.0.0/33'"),
    ],
)
def test_nonsense_is_refused(name, value, fragment):
    returncode, _, stderr = run_settings(
        "config.settings.production", [name], {**PRODUCTION, **ON_THE_SANDBOX, name: value}
    )

    assert_refuses(returncode, stderr, fragment)
