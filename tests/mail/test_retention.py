"""Mail's retention: finished emails go after RETENTION_EMAIL_DAYS, never one still to be sent;
billing's outbox purge keeps an event while an email holds it (without billing knowing mail)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import BillingEvent
from billing.retention import event_purge_old
from mail import retention
from mail.models import Email, EmailStatus
from tests.mail.conftest import ready_emails

pytestmark = pytest.mark.django_db


def _age(queryset, days: float) -> None:
    queryset.update(created_at=timezone.now() - timedelta(days=days))


def _emails_in(plan, statuses: list[EmailStatus]) -> list[Email]:
    emails = ready_emails(plan, count=len(statuses))
    for email, status in zip(emails, statuses, strict=True):
        Email.objects.filter(pk=email.pk).update(
            status=status,
            sent_at=timezone.now() if status == EmailStatus.SENT else None,
            next_attempt_at=timezone.now() if status in (EmailStatus.READY, EmailStatus.SENDING) else None,
        )
    return emails


def test_finished_emails_older_than_the_retention_go_and_unsent_or_young_ones_stay(settings, plan):
    settings.RETENTION_EMAIL_DAYS = 180
    statuses = [EmailStatus.SENT, EmailStatus.FAILED, EmailStatus.SKIPPED, EmailStatus.READY, EmailStatus.SENDING]
    *old, young = _emails_in(plan, [*statuses, EmailStatus.SENT])
    _age(Email.objects.exclude(pk=young.pk), 181)
    _age(Email.objects.filter(pk=young.pk), 179)

    deleted = retention.email_purge_old(time_budget=10)

    assert deleted == 3
    assert set(Email.objects.values_list("pk", flat=True)) == {old[3].pk, old[4].pk, young.pk}


def test_an_event_is_kept_while_an_email_holds_it_and_goes_after_the_email(settings, plan):
    # given old events whose emails are old too: one sent, one still to be sent
    settings.RETENTION_EVENT_DAYS = 180
    settings.RETENTION_EMAIL_DAYS = 180
    sent, unsent = _emails_in(plan, [EmailStatus.SENT, EmailStatus.READY])
    _age(Email.objects.all(), 200)
    _age(BillingEvent.objects.all(), 200)

    # when billing purges first, then mail, then billing again
    events_while_held = event_purge_old(time_budget=10)
    emails = retention.email_purge_old(time_budget=10)
    events_after = event_purge_old(time_budget=10)

    # then no event goes while its email exists; the sent email's event goes after it
    assert events_while_held == 0
    assert emails == 1
    assert events_after == 1
    assert list(Email.objects.values_list("pk", flat=True)) == [unsent.pk]
    assert list(BillingEvent.objects.values_list("pk", flat=True)) == [unsent.event_id]
    assert not BillingEvent.objects.filter(pk=sent.event_id).exists()


def test_a_purge_leaves_nothing_for_the_dispatcher_to_mail_again(settings, plan):
    """The email ages are validated above the lookback: an old event whose email is gone is not re-mailed."""
    settings.RETENTION_EMAIL_DAYS = 4
    _emails_in(plan, [EmailStatus.SENT])
    _age(Email.objects.all(), 5)
    _age(BillingEvent.objects.all(), 5)

    retention.email_purge_old(time_budget=10)
    ready_emails(plan, count=0)

    assert not Email.objects.exists()
