"""`manage.py runsandbox` and `sandbox_checkout` as a developer runs them: the payment links follow the port."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH = ("100500", "test_sandbox_key")
PAYMENT = {
    "amount": {"value": "299.00", "currency": "RUB"},
    "confirmation": {"type": "redirect", "return_url": "https://cinema.example/return"},
}
# A developer's .env would fill in YOOKASSA_SANDBOX_* and change what is tested: keep it out.
_RUN_MANAGE_PY = (
    "import environ, runpy, sys\n"
    "environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: None)\n"
    "sys.argv = ['manage.py', *sys.argv[1:]]\n"
    "runpy.run_path('manage.py', run_name='__main__')\n"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def runsandbox(tmp_path):
    """Start `manage.py runsandbox ARGS` with the local settings; yield its base URL once it answers."""
    started: list[subprocess.Popen] = []

    def start(port: int, *args: str, env: dict[str, str] | None = None) -> str:
        child_env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", str(REPO_ROOT)),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        argv = ["runsandbox", "--port", str(port), "--state-file", str(tmp_path / "sandbox.sqlite3"), *args]
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_MANAGE_PY, *argv],
            cwd=REPO_ROOT,
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/", timeout=1).raise_for_status()
                return url
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"runsandbox did not start: {process.communicate(timeout=5)[0]}") from None
                time.sleep(0.1)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def _create_payment(url: str) -> dict:
    response = requests.post(
        f"{url}/v3/payments", json=PAYMENT, auth=AUTH, headers={"Idempotence-Key": "runsandbox-1"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_runsandbox_on_another_port_hands_out_payment_pages_on_that_port(runsandbox):
    port = _free_port()
    url = runsandbox(port)

    payment = _create_payment(url)

    confirmation_url = payment["confirmation"]["confirmation_url"]
    assert confirmation_url == f"http://127.0.0.1:{port}/checkout/{payment['id']}"
    assert requests.get(confirmation_url, timeout=5).status_code == 200


def test_an_explicit_public_url_wins_over_the_port(runsandbox):
    url = runsandbox(_free_port(), env={"YOOKASSA_SANDBOX_PUBLIC_URL": "https://pay.sandbox.example"})

    payment = _create_payment(url)

    assert payment["confirmation"]["confirmation_url"].startswith("https://pay.sandbox.example/checkout/")


def test_sandbox_checkout_talks_to_the_sandbox_on_the_port_it_is_given(sandbox, settings, capsys):
    settings.YOOKASSA_API_URL = f"http://127.0.0.1:{_free_port()}/v3"  # nothing there
    port = sandbox.url.rsplit(":", 1)[1]

    call_command("sandbox_checkout", "--port", port)

    assert f"pay it at http://127.0.0.1:{port}/checkout/" in capsys.readouterr().out
    assert sandbox.store.count_payments() == 1
