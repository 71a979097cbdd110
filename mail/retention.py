"""Sent, failed and skipped emails older than RETENTION_EMAIL_DAYS are deleted (billing.retention).

Never an email still to be sent. validate() keeps the age well above MAIL_EVENT_LOOKBACK_HOURS:
an email deleted while its event is still in the window mail reads would be composed and sent
again. Billing's outbox purge skips events an email still holds, so an event goes after its email.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing.retention import purge_in_batches
from mail.models import Email, EmailStatus

DONE_STATUSES = (EmailStatus.SENT, EmailStatus.FAILED, EmailStatus.SKIPPED)


def email_purge_old(*, time_budget: float, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return purge_in_batches(
        Email.objects.filter(status__in=DONE_STATUSES),
        age_field="created_at",
        older_than=now - timedelta(days=settings.RETENTION_EMAIL_DAYS),
        time_budget=time_budget,
    )
