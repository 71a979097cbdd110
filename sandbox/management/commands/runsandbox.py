import contextlib
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer


class Command(BaseCommand):
    help = "Run the YooKassa API v3 sandbox (emulator) and its payment page."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.YOOKASSA_SANDBOX_HOST)
        parser.add_argument("--port", type=int, default=settings.YOOKASSA_SANDBOX_PORT)
        parser.add_argument("--state-file", default=settings.YOOKASSA_SANDBOX_STATE_FILE)
        parser.add_argument("--notification-url", default=settings.YOOKASSA_SANDBOX_NOTIFICATION_URL)

    def handle(self, *args, **options) -> None:
        if not settings.YOOKASSA_SANDBOX:
            raise CommandError("Real YooKassa credentials are configured: the sandbox never runs beside them.")
        if options["state_file"] != ":memory:":
            Path(options["state_file"]).parent.mkdir(parents=True, exist_ok=True)
        config = SandboxConfig(
            shop_id=settings.YOOKASSA_SHOP_ID,
            secret_key=settings.YOOKASSA_SECRET_KEY,
            host=options["host"],
            port=options["port"],
            # Unset, the server fills in the address it really listens on (--host, --port).
            public_url=settings.YOOKASSA_SANDBOX_PUBLIC_URL or None,
            notification_url=options["notification_url"] or None,
            state_file=options["state_file"],
            auth_demo_secret=getattr(settings, "AUTH_DEMO_WEBHOOK_SECRET", None),
        )
        server = SandboxServer(config)
        self.stdout.write(
            f"YooKassa sandbox listening on {server.url}: API {config.public_url}/v3 (shopId {config.shop_id}), "
            f"payment pages {config.public_url}/checkout/...; notifications to {config.notification_url}; "
            f"the demo Auth service at {config.public_url}/auth-demo/"
        )
        if f"{config.public_url}/v3" != settings.YOOKASSA_API_URL:
            self.stdout.write(
                f"Note: this service is configured for {settings.YOOKASSA_API_URL}; to move both, "
                "set YOOKASSA_SANDBOX_PORT instead of --port."
            )
        self.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
