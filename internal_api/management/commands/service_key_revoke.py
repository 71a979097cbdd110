from django.core.management.base import BaseCommand, CommandError

from internal_api.credentials import service_key_revoke


class Command(BaseCommand):
    help = "Revoke a service's API key by its prefix (the 8 characters after bsk_); it is refused at once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args, prefix: str, **options) -> None:
        try:
            credential = service_key_revoke(prefix=prefix)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Revoked {credential} at {credential.revoked_at.isoformat()}.")
