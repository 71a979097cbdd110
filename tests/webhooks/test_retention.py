"""The inbox's retention: old notifications and untrusted tallies go, young ones stay, and the
payments they point at are never touched."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.models import Payment
from webhooks import retention
from webhooks.models import (
    NotificationOutcome,
    UntrustedNotificationSample,
    UntrustedNotificationTally,
    YooKassaNotification,
)

pytestmark = pytest.mark.django_db


def _tally(network: str, days_old: float) -> UntrustedNotificationTally:
    moment = timezone.now() - timedelta(days=days_old)
    UntrustedNotificationSample.objects.create(source_network=network, window_start=moment, body="{}")
    return UntrustedNotificationTally.objects.create(
        source_network=network, window_start=moment, first_seen_at=moment, last_seen_at=moment, received=1
    )


def test_old_notifications_and_tallies_go_young_ones_and_payments_stay(settings, active):
    settings.RETENTION_NOTIFICATION_DAYS = 90
    settings.RETENTION_UNTRUSTED_NOTIFICATION_DAYS = 30
    payment = Payment.objects.get(subscription=active)
    old = [
        YooKassaNotification.objects.create(trusted_source=True, outcome=outcome, payment=payment)
        for outcome in (NotificationOutcome.PROCESSED, NotificationOutcome.RECEIVED, NotificationOutcome.FAILED)
    ]
    YooKassaNotification.objects.filter(pk__in=[row.pk for row in old]).update(
        received_at=timezone.now() - timedelta(days=91)
    )
    young = YooKassaNotification.objects.create(trusted_source=True, payment=payment)
    old_tally, young_tally = _tally("203.0.113.7/32", 31), _tally("203.0.113.7/32", 29)

    purged = retention.notification_purge_old(time_budget=10)

    assert purged == {"notifications": 3, "untrusted_tallies": 1, "untrusted_samples": 1}
    assert list(YooKassaNotification.objects.values_list("pk", flat=True)) == [young.pk]
    assert list(UntrustedNotificationTally.objects.values_list("pk", flat=True)) == [young_tally.pk]
    assert not UntrustedNotificationTally.objects.filter(pk=old_tally.pk).exists()
    assert list(UntrustedNotificationSample.objects.values_list("window_start", flat=True)) == [
        young_tally.window_start
    ]
    assert Payment.objects.get(pk=payment.pk).status == payment.status


def test_the_janitor_leaves_finished_notifications_alone(settings):
    settings.YOOKASSA_NOTIFICATION_STALE_MINUTES = 15
    finished = YooKassaNotification.objects.create(outcome=NotificationOutcome.PROCESSED, detail="Payment is paid.")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    YooKassaNotification.objects.filter(pk=finished.pk).update(received_at=long_ago)

    closed = retention.notification_close_interrupted()

    assert closed == 0
    finished.refresh_from_db()
    assert (finished.outcome, finished.detail) == (NotificationOutcome.PROCESSED, "Payment is paid.")
