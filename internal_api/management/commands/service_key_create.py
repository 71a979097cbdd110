from django.core.management.base import BaseCommand, CommandError

from internal_api.credentials import service_key_create
from internal_api.models import SCOPES


class Command(BaseCommand):
    help = "Make an API key for one of the cinema's services; the key is printed once and never stored."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--service", required=True, help="e.g. auth")
        parser.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, service: str, scopes: str, expires_in_days: int | None, **options) -> None:
        try:
            created = service_key_create(
                service=service,
                scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
                expires_in_days=expires_in_days,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        credential = created.credential
        expires = credential.expires_at.isoformat() if credential.expires_at else "never"
        self.stderr.write(
            f"Key {credential.prefix} for {credential.service} ({', '.join(credential.scopes)}; expires {expires})."
            " It is shown once: store it in the service's secrets now."
        )
        self.stdout.write(created.key)
