"""What Mailgun's signed tracking webhook says became of a sent email."""

import hashlib
import hmac
import json
import time

import pytest

from mail.models import Email, EmailStatus
from mail.services import email_send_ready
from tests.mail.conftest import ready_emails

pytestmark = pytest.mark.django_db

SIGNING_KEY = "test-mailgun-webhook-signing-key"
TRACKING_URL = "/anymail/mailgun/tracking/"
MESSAGE_ID = "<20270101120000.1.ABCDEF@mg.cinema.example>"


@pytest.fixture
def tracking(settings):
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = SIGNING_KEY
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


@pytest.fixture
def sent(plan) -> Email:
    """Sent through Mailgun: the row carries the id Mailgun answered with."""
    [email] = ready_emails(plan)
    email_send_ready()
    Email.objects.filter(pk=email.pk).update(provider_message_id=MESSAGE_ID)
    email.refresh_from_db()
    return email


def mailgun_event(event: str, *, at: float, message_id: str = MESSAGE_ID, email_id=None, key=SIGNING_KEY, **data):
    """A tracking webhook body as Mailgun signs and posts it."""
    token, timestamp = f"token-{event}-{at}", str(int(time.time()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"token": token, "timestamp": timestamp, "signature": signature},
        "event-data": {
            "event": event,
            "timestamp": at,
            "recipient": "viewer0@example.com",
            "message": {"headers": {"message-id": message_id.strip("<>")}},
            "user-variables": {"email_id": str(email_id)} if email_id else {},
            **data,
        },
    }


def post(client, body):
    return client.post(TRACKING_URL, json.dumps(body), content_type="application/json")


@pytest.mark.usefixtures("tracking")
def test_a_delivery_is_recorded(client, sent):
    response = post(client, mailgun_event("delivered", at=1_800_000_000.5, **{"delivery-status": {"message": "OK"}}))

    sent.refresh_from_db()
    assert response.status_code == 200
    assert sent.delivery_status == "delivered"
    assert sent.delivery_detail == "OK"
    assert sent.delivery_updated_at.timestamp() == 1_800_000_000.5
    assert sent.status == EmailStatus.SENT


@pytest.mark.usefixtures("tracking")
def test_a_bounce_is_recorded_and_older_news_arriving_later_does_not_undo_it(client, sent):
    bounce = mailgun_event(
        "failed",
        at=1_800_000_100,
        severity="permanent",
        reason="bounce",
        **{"delivery-status": {"message": "No such user"}},
    )
    post(client, bounce)

    post(client, mailgun_event("delivered", at=1_800_000_000))

    sent.refresh_from_db()
    assert sent.delivery_status == "bounced"
    assert sent.delivery_detail == "No such user"


@pytest.mark.usefixtures("tracking")
def test_an_email_whose_message_id_was_never_recorded_is_found_by_its_metadata(client, sent):
    Email.objects.filter(pk=sent.pk).update(provider_message_id="")

    post(client, mailgun_event("delivered", at=1_800_000_000, email_id=sent.pk))

    sent.refresh_from_db()
    assert sent.delivery_status == "delivered"
    assert sent.provider_message_id == MESSAGE_ID


@pytest.mark.usefixtures("tracking")
def test_opens_and_clicks_are_not_recorded(client, sent):
    response = post(client, mailgun_event("opened", at=1_800_000_000))

    sent.refresh_from_db()
    assert response.status_code == 200
    assert sent.delivery_status == ""


@pytest.mark.usefixtures("tracking")
def test_a_webhook_with_a_wrong_signature_is_refused(client, sent):
    response = post(client, mailgun_event("delivered", at=1_800_000_000, key="not-the-key"))

    sent.refresh_from_db()
    assert response.status_code == 400
    assert sent.delivery_status == ""


def test_without_a_signing_key_there_is_no_tracking_webhook(client, settings):
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = ""
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key-not-a-real-mailgun-key"}

    response = post(client, mailgun_event("delivered", at=1_800_000_000, key="key-not-a-real-mailgun-key"))

    assert response.status_code == 404
