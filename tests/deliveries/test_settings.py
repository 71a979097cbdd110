"""Endpoints in settings: refused at start when wrong; the local run has the demo Auth endpoint."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import Error

from deliveries.checks import check_configured_endpoints
from tests.deliveries.receiver import new_secret

ROOT = Path(__file__).resolve().parents[2]


def test_a_wrong_endpoint_in_settings_fails_the_checks(settings):
    settings.SERVICE_WEBHOOKS = [
        {"name": "search", "url": "ftp://x", "secret": "plain", "event_types": ["no.such"]},
        {"name": "search", "url": "https://search.example/", "secret": new_secret(), "event_types": []},
    ]

    errors = check_configured_endpoints()

    messages = " ".join(error.msg for error in errors)
    assert all(isinstance(error, Error) for error in errors)
    assert "repeat" in messages
    assert "whsec_" in messages
    assert "no.such" in messages
    assert "URL" in messages


def test_a_right_endpoint_passes(settings):
    settings.SERVICE_WEBHOOKS = [
        {
            "name": "search",
            "url": "https://search.example/",
            "secret": new_secret(),
            "event_types": ["refund.succeeded"],
        }
    ]

    assert check_configured_endpoints() == []


def test_the_local_run_delivers_to_the_demo_auth_service():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "from deliveries.endpoints import endpoint_specs_from_settings; "
        "(demo,) = [s for s in endpoint_specs_from_settings() if s.name == 'auth-demo']; "
        "print(demo.url, demo.secret == settings.AUTH_DEMO_WEBHOOK_SECRET, demo.secret[:6])"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "YOOKASSA_SANDBOX_PORT": "8123"}
    environment.pop("SERVICE_WEBHOOKS", None)

    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    assert completed.stdout.split() == ["http://127.0.0.1:8123/auth-demo/", "True", "whsec_"]


def _current(settings) -> dict:
    from django.conf import settings as django_settings

    return {name: getattr(django_settings, name) for name in dir(django_settings._wrapped) if name.isupper()}


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"DELIVERY_RETRY_MIN_SECONDS": 0}, "DELIVERY_RETRY_MIN_SECONDS"),
        ({"DELIVERY_RETRY_MIN_SECONDS": 7200}, "at most DELIVERY_RETRY_MAX_SECONDS"),
        ({"DELIVERY_RETRY_DAYS": 0}, "DELIVERY_RETRY_DAYS"),
        ({"DELIVERY_BATCH_SIZE": 0}, "DELIVERY_BATCH_SIZE"),
        ({"DELIVERY_LEASE_SECONDS": 20}, "DELIVERY_LEASE_SECONDS"),
        ({"AUTH_WEBHOOK_URL": "https://auth.example/hooks"}, "AUTH_WEBHOOK_SECRET"),
        ({"SERVICE_WEBHOOKS": {"name": "x"}}, "JSON list"),
        ({"RETENTION_DELIVERY_DAYS": 3}, "RETENTION_DELIVERY_DAYS"),
    ],
)
def test_settings_that_would_lose_or_repeat_deliveries_refuse_to_start(settings, changes, complaint):
    from django.core.exceptions import ImproperlyConfigured

    from config.settings import base

    values = {
        **_current(settings),
        "DELIVERY_RETRY_MIN_SECONDS": 30.0,
        "DELIVERY_RETRY_MAX_SECONDS": 3600.0,
        "DELIVERY_CONNECT_TIMEOUT": 3.0,
        "DELIVERY_READ_TIMEOUT": 10.0,
        "DELIVERY_LEASE_SECONDS": 60.0,
        **changes,
    }

    def validate() -> None:
        base._validate_deliveries(values)
        base._validate_inbox_and_retention(values)

    with pytest.raises(ImproperlyConfigured, match=complaint):
        validate()


def test_the_default_delivery_settings_pass(settings):
    from config.settings import base

    base._validate_deliveries(_current(settings))
    base._validate_inbox_and_retention(_current(settings))
