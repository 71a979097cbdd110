import json
from contextlib import nullcontext
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing import clock
from billing.services import lifecycle, reconciliation, renewals

JOBS = {
    "notices": lambda: lifecycle.subscription_record_renewal_notices(),
    "renewals": lambda: renewals.subscription_renew_due().as_dict(),
    "dunning": lambda: renewals.subscription_retry_past_due().as_dict(),
    "reconcile": lambda: reconciliation.billing_reconcile().as_dict(),
    "expiry": lambda: lifecycle.subscription_expire_due(),
}


class Command(BaseCommand):
    help = (
        "Run billing's recurring jobs now, in order, optionally as of another moment: e.g. "
        "--as-of 2027-01-01T10:00 watches a subscription renew (or fail, retry and expire) against "
        "the sandbox without waiting a month. --as-of charges saved cards for that moment, so it is "
        "refused unless the sandbox is in use. Each job charges a subscription at most once per run; "
        "the janitor keeps real time."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", help="ISO 8601 moment billing's clock reads while the jobs run")
        parser.add_argument("--job", action="append", choices=list(JOBS), help="only these jobs (repeatable)")

    def handle(self, *args, **options) -> None:
        # Without --as-of the jobs run on real time, and nothing is moved.
        moved = clock.moved_to(self._as_of(options["as_of"])) if options["as_of"] else nullcontext()
        with moved:
            self.stdout.write(f"billing clock: {clock.domain_now().isoformat()}")
            for name in options["job"] or JOBS:
                self.stdout.write(f"{name}: {json.dumps(JOBS[name](), default=str)}")

    @staticmethod
    def _as_of(value: str) -> datetime:
        if not settings.YOOKASSA_SANDBOX or settings.YOOKASSA_HAS_REAL_CREDENTIALS:
            raise CommandError(
                "--as-of charges saved cards as of another moment: it only runs against the YooKassa "
                "sandbox (YOOKASSA_SANDBOX on, no real YooKassa credentials)."
            )
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise CommandError(f"--as-of is not an ISO 8601 moment: {error}") from error
        return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
