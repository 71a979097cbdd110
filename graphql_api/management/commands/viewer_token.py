import uuid
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Print a viewer token signed with this machine's JWT_SECRET, as the Auth service would issue, "
        "to try the API locally (GraphiQL: header Authorization: Bearer <token>). DEBUG only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--viewer-id", type=uuid.UUID, default=None, help="default: a new viewer")
        parser.add_argument("--email", default="viewer@example.com")
        parser.add_argument("--hours", type=int, default=24)

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG or settings.JWT_PUBLIC_KEY or not settings.JWT_SECRET:
            raise CommandError("Only for a DEBUG run with an HS256 JWT_SECRET: real tokens come from the Auth service.")
        viewer_id = options["viewer_id"] or uuid.uuid4()
        claims = {
            "sub": str(viewer_id),
            "email": options["email"],
            "exp": datetime.now(UTC) + timedelta(hours=options["hours"]),
        }
        if settings.JWT_AUDIENCE:
            claims["aud"] = settings.JWT_AUDIENCE
        if settings.JWT_ISSUER:
            claims["iss"] = settings.JWT_ISSUER
        self.stdout.write(jwt.encode(claims, settings.JWT_SECRET, algorithm="HS256"))
