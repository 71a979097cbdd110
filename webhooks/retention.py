"""The inbox's upkeep: interrupted notifications are closed, old rows deleted (billing.retention).

A notification whose process (or database) died mid-way stays RECEIVED: after
YOOKASSA_NOTIFICATION_STALE_MINUTES it is marked DEFERRED, since YooKassa redelivers it and the
reconciliation job asks YooKassa about every open payment anyway.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing.retention import purge_in_batches
from webhooks.models import (
    NotificationOutcome,
    UntrustedNotificationSample,
    UntrustedNotificationTally,
    YooKassaNotification,
)

INTERRUPTED_DETAIL = (
    "Processing was interrupted (the process or the database went away); "
    "YooKassa redelivers it and reconciliation catches up."
)


def notification_close_interrupted(*, now: datetime | None = None) -> int:
    """Mark notifications still RECEIVED after the stale time DEFERRED; returns how many."""
    now = now or timezone.now()  # received_at is real time
    stale = now - timedelta(minutes=settings.YOOKASSA_NOTIFICATION_STALE_MINUTES)
    # A handler that does finish after all still writes its own outcome over this one.
    return YooKassaNotification.objects.filter(outcome=NotificationOutcome.RECEIVED, received_at__lt=stale).update(
        outcome=NotificationOutcome.DEFERRED, detail=INTERRUPTED_DETAIL, processed_at=now
    )


def notification_purge_old(*, time_budget: float, now: datetime | None = None) -> dict:
    """Inbox rows older than RETENTION_NOTIFICATION_DAYS, untrusted tallies older than
    RETENTION_UNTRUSTED_NOTIFICATION_DAYS (and their samples); half of the time budget for each kind."""
    now = now or timezone.now()
    return {
        "notifications": purge_in_batches(
            YooKassaNotification.objects.all(),
            age_field="received_at",
            older_than=now - timedelta(days=settings.RETENTION_NOTIFICATION_DAYS),
            time_budget=time_budget / 2,
        ),
        "untrusted_tallies": purge_in_batches(
            UntrustedNotificationTally.objects.all(),
            age_field="window_start",
            older_than=now - timedelta(days=settings.RETENTION_UNTRUSTED_NOTIFICATION_DAYS),
            time_budget=time_budget / 4,
        ),
        "untrusted_samples": purge_in_batches(
            UntrustedNotificationSample.objects.all(),
            age_field="window_start",
            older_than=now - timedelta(days=settings.RETENTION_UNTRUSTED_NOTIFICATION_DAYS),
            time_budget=time_budget / 4,
        ),
    }
