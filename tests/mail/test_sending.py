"""Sending Email rows: claimed under a lease, sent through Django's mail API, retried with backoff."""

import collections
import logging
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from mail.models import Email, EmailStatus
from mail.receivers import DELIVERY_DEBOUNCE_KEY
from mail.services import SEND_LEASE, email_send_ready
from tests.mail.conftest import ready_emails

DOWN = "tests.mail.backends.DownBackend"


def time_passes(email: Email) -> None:
    """Its next attempt is due now."""
    Email.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())


@pytest.fixture
def email(plan) -> Email:
    [email] = ready_emails(plan)
    return email


@pytest.mark.django_db
def test_a_ready_email_is_sent_with_both_bodies_and_marked_sent(email):
    report = email_send_ready()

    [sent] = mail.outbox
    email.refresh_from_db()
    assert report.as_dict() == {"sent": 1, "retrying": 0, "failed": 0}
    assert sent.to == ["viewer0@example.com"]
    assert sent.subject == email.subject
    assert sent.body == email.body_text
    assert sent.alternatives == [(email.body_html, "text/html")]
    assert sent.metadata == {"email_id": str(email.pk)}
    assert sent.tags == ["renewal_upcoming"]
    assert email.status == EmailStatus.SENT
    assert email.sent_at is not None
    assert email.attempts == 1
    assert email.next_attempt_at is None


@pytest.mark.django_db
def test_anymail_is_handed_the_tags_and_metadata_and_its_message_id_is_kept(plan, settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    [email] = ready_emails(plan)

    email_send_ready()

    [sent] = mail.outbox
    email.refresh_from_db()
    assert sent.anymail_test_params["tags"] == ["renewal_upcoming"]
    assert sent.anymail_test_params["metadata"] == {"email_id": str(email.pk)}
    assert email.status == EmailStatus.SENT
    assert email.provider_message_id == str(sent.anymail_status.message_id)


@pytest.mark.django_db
def test_a_sent_email_is_not_sent_again(email):
    email_send_ready()

    report = email_send_ready()

    assert report.sent == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_email_whose_time_has_not_come_waits(email):
    Email.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))

    report = email_send_ready()

    assert report.sent == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_provider_that_is_down_gets_tries_further_and_further_apart_then_the_email_fails(email, settings, caplog):
    settings.EMAIL_BACKEND = DOWN
    settings.MAIL_RETRY_MINUTES = [1, 10, 60, 360]
    delays = []

    for attempt in range(1, 5):
        before = timezone.now()
        report = email_send_ready()
        email.refresh_from_db()
        assert report.as_dict() == {"sent": 0, "retrying": 1, "failed": 0}
        assert (email.status, email.attempts) == (EmailStatus.READY, attempt)
        assert email.last_error == "ConnectionError: Mailgun is down"
        delays.append(email.next_attempt_at - before)
        assert email_send_ready().retrying == 0, "tried again before its time"
        time_passes(email)
    with caplog.at_level(logging.ERROR, logger="mail.services"):
        report = email_send_ready()

    email.refresh_from_db()
    assert [round(delay.total_seconds() / 60) for delay in delays] == [1, 10, 60, 360]
    assert report.as_dict() == {"sent": 0, "retrying": 0, "failed": 1}
    assert (email.status, email.attempts, email.next_attempt_at) == (EmailStatus.FAILED, 5, None)
    [logged] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert f"Email {email.pk} (renewal_upcoming to viewer0@example.com) failed for good" in logged.getMessage()
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_provider_that_comes_back_sends_the_email_on_the_next_try(email, settings):
    settings.EMAIL_BACKEND = DOWN
    email_send_ready()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    time_passes(email)

    email_send_ready()

    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (EmailStatus.SENT, 2, "")
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_refused_recipient_fails_at_once(email, settings):
    settings.EMAIL_BACKEND = "tests.mail.backends.RefusingBackend"

    report = email_send_ready()

    email.refresh_from_db()
    assert report.failed == 1
    assert (email.status, email.attempts) == (EmailStatus.FAILED, 1)
    assert email.last_error.startswith("AnymailRecipientsRefused")


@pytest.mark.django_db
def test_an_email_whose_worker_died_while_sending_is_sent_after_the_lease(email):
    Email.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING, attempts=1, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )

    email_send_ready()

    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENT, 2)
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_email_being_sent_within_its_lease_is_left_to_its_worker(email):
    Email.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING, attempts=1, next_attempt_at=timezone.now() + SEND_LEASE - timedelta(seconds=5)
    )

    email_send_ready()

    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENDING, 1)
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_worker_that_outlived_its_lease_leaves_the_new_claim_alone(email, settings, caplog):
    settings.EMAIL_BACKEND = "tests.mail.backends.SlowBackend"

    with caplog.at_level(logging.WARNING, logger="mail.services"):
        email_send_ready()

    email.refresh_from_db()
    assert (email.status, email.attempts) == (EmailStatus.SENDING, 2)
    assert f"Email {email.pk} was sent after its lease ran out" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_senders_at_once_send_each_email_once(plan):
    cache.set(DELIVERY_DEBOUNCE_KEY, True, timeout=600)  # these tests dispatch and send themselves
    emails = ready_emails(plan, count=30)
    cache.delete(DELIVERY_DEBOUNCE_KEY)
    barrier, errors = threading.Barrier(4), []

    def send():
        try:
            barrier.wait(timeout=10)
            email_send_ready()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    sent = collections.Counter(message.metadata["email_id"] for message in mail.outbox)
    assert sent == {str(email.pk): 1 for email in emails}
    assert set(Email.objects.values_list("status", "attempts")) == {(EmailStatus.SENT, 1)}
