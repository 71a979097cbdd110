"""Endpoints in settings: refused at start when wrong; the local run has the demo Auth endpoint."""

import os
import subprocess
import sys
from pathlib import Path

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
