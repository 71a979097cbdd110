"""The YooKassa sandbox (sandbox/, our emulator of API v3), added to the settings where it runs.

Only the local and test settings and config/settings/sandbox.py (compose's `sandbox` service) call
`add_emulator`: production's service settings never list the app, so its templates are not on
their template path and the production image need not ship it (Dockerfile). What the service
itself needs to talk to a sandbox (YOOKASSA_SANDBOX, its API URL and test credentials) is in base.
"""

from .base import BASE_DIR, env, yookassa_api_url


def add_emulator(settings: dict) -> None:
    """Install the `sandbox` app and its settings into a settings module's globals()."""
    settings["INSTALLED_APPS"] = [*settings["INSTALLED_APPS"], "sandbox"]
    # The local run's web server listens here (Procfile.local); the sandbox notifies it there.
    settings["WEB_PORT"] = web_port = env.int("WEB_PORT", default=8000)
    # Where `manage.py runsandbox` listens.
    settings["YOOKASSA_SANDBOX_HOST"] = env.str("YOOKASSA_SANDBOX_HOST", default="127.0.0.1")
    settings["YOOKASSA_SANDBOX_PORT"] = port = env.int("YOOKASSA_SANDBOX_PORT", default=8001)
    # The sandbox as browsers reach it (its payment pages); empty = where it listens (so
    # `runsandbox --port` moves it too).
    settings["YOOKASSA_SANDBOX_PUBLIC_URL"] = public_url = env.str("YOOKASSA_SANDBOX_PUBLIC_URL", default="")
    settings["YOOKASSA_SANDBOX_NOTIFICATION_URL"] = env.str(
        "YOOKASSA_SANDBOX_NOTIFICATION_URL", default=f"http://127.0.0.1:{web_port}/webhooks/yookassa/"
    )
    # Payments, saved cards and the notification outbox, kept across restarts.
    settings["YOOKASSA_SANDBOX_STATE_FILE"] = env.str(
        "YOOKASSA_SANDBOX_STATE_FILE", default=str(BASE_DIR / "var" / "sandbox.sqlite3")
    )
    if not env.str("YOOKASSA_SANDBOX_API_URL", default=""):
        # The emulator runs beside this service: unless told otherwise, the service talks to it
        # where it serves, so moving its port (or its public URL) moves the service's API URL too.
        settings["YOOKASSA_SANDBOX_API_URL"] = f"{public_url or f'http://127.0.0.1:{port}'}/v3"
        settings["YOOKASSA_API_URL"] = yookassa_api_url(settings["YOOKASSA_SANDBOX_API_URL"])
