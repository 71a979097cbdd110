"""Give an operator a TOTP device for the admin and print the otpauth:// URI for their app."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = (
        "Create a TOTP device for an admin user and print its otpauth:// URI (paste it into, or make a QR "
        "code of it for, an authenticator app). The URI holds the secret: pass it to the operator only."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--device-name", default="authenticator", help="the device's name (default: authenticator)")
        parser.add_argument(
            "--replace", action="store_true", help="delete the user's device of that name first (a lost phone)"
        )

    def handle(self, *args, username: str, device_name: str, replace: bool, **options):
        user_model = get_user_model()
        try:
            user = user_model.objects.get_by_natural_key(username)
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user {username!r}.") from exc
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: the admin would not let them in with any token.")
        with transaction.atomic():
            existing = TOTPDevice.objects.select_for_update().filter(user=user, name=device_name)
            if existing.exists():
                if not replace:
                    raise CommandError(
                        f"{username!r} already has a TOTP device {device_name!r}: pass --replace to give them a new "
                        "secret (the old one stops working), or --device-name for a second device."
                    )
                existing.delete()
            device = TOTPDevice.objects.create(user=user, name=device_name, confirmed=True)
        self.stdout.write(device.config_url)
