"""What Mailgun's signed tracking webhook says became of a sent email."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test import Client
from django.utils import timezone

from mail import receivers as tracking_receivers
from mail import tasks as mail_tasks
from mail.models import Email, EmailStatus, MailgunWebhookToken
from mail.schedules import MAIL_SCHEDULES
from mail.services import MailgunWebhookVerdict, email_record_delivery, email_send_ready, mailgun_webhook_accept
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


def signature_block(token: str, timestamp: str, key: str = SIGNING_KEY) -> dict:
    """Mailgun's signature: HMAC-SHA256 of timestamp + token (UTF-8, for tokens Mailgun never sends)."""
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"token": token, "timestamp": timestamp, "signature": signature}


def mailgun_event(
    event: str,
    *,
    at: float,
    message_id: str = MESSAGE_ID,
    email_id=None,
    key=SIGNING_KEY,
    signed_at: float | None = None,
    token: str | None = None,
    **data,
):
    """A tracking webhook body as Mailgun signs and posts it (signed now, unless told when)."""
    token = token or f"token-{event}-{at}"
    timestamp = str(int(time.time() if signed_at is None else signed_at))
    return {
        "signature": signature_block(token, timestamp, key),
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


# --- Malformed bodies: a clear 400, nothing recorded -----------------------------------------------


def _delivered(**overrides) -> dict:
    body = mailgun_event("delivered", at=1_800_000_000)
    body["event-data"] |= overrides
    return body


def _signed_with(token: str, timestamp: str) -> dict:
    return {**_delivered(), "signature": signature_block(token, timestamp)}


def _raw(text: str | bytes, content_type: str = "application/json"):
    return text.encode() if isinstance(text, str) else text, content_type


NUL_BODIES = {
    "the message id": _delivered(message={"headers": {"message-id": "a\x00b@mg.cinema.example"}}),
    "the bounce description": mailgun_event(
        "failed", at=1_800_000_000, severity="permanent", **{"delivery-status": {"description": "bad\x00x"}}
    ),
    "the bounce message": mailgun_event(
        "failed", at=1_800_000_000, severity="permanent", **{"delivery-status": {"message": "\x00"}}
    ),
    "the reject reason": mailgun_event("rejected", at=1_800_000_000, reject={"reason": "no\x00"}),
    "the user agent": _delivered(**{"client-info": {"user-agent": "\x00"}}),
    "the recipient": _delivered(recipient="viewer0\x00@example.com"),
    "the event": _delivered(event="delivered\x00"),
    "a key": _delivered(**{"tags\x00": ["a"]}),
    "a list item": _delivered(tags=["a\x00"]),
}

MALFORMED = {
    # name: (body, or (raw bytes, content type)) -> the 400's reason
    "nested JSON": (_raw('{"signature": ' + "[" * 5000 + "]" * 5000 + "}"), "The body is not JSON"),
    "nested within the stack": (
        _raw('{"signature": {}, "event-data": {"a": ' + "[" * 40 + "]" * 40 + "}}"),
        "The body is nested more than 16 levels deep.",
    ),
    "an array": (_raw(json.dumps([_delivered()])), "The body must be a JSON object."),
    "a string": (_raw(json.dumps(json.dumps(_delivered()))), "The body must be a JSON object."),
    "invalid UTF-8": (_raw(b'{"signature": "\xff"}'), "The body is not JSON"),
    "a 5,000-digit number": (_raw('{"signature": ' + "9" * 5000 + "}"), "The body is not JSON"),
    "a form (legacy webhook)": (_raw("token=t&timestamp=1&signature=s", "application/x-www-form-urlencoded"), "JSON"),
    "no signature block": ({"event-data": _delivered()["event-data"]}, "'signature' must be an object."),
    "a list as the signature block": (
        {**_delivered(), "signature": list(_delivered()["signature"].values())},
        "'signature' must be an object.",
    ),
    "a non-ASCII token": (_signed_with("tökén-1", str(int(time.time()))), "'signature.token' must be"),
    "a non-ASCII timestamp": (_signed_with("token-1", "\uff11\uff18" + "\uff10" * 8), "'signature.timestamp' must be"),
    "a timestamp that is a list": (
        {**_delivered(), "signature": {**_delivered()["signature"], "timestamp": [1]}},
        "'signature.timestamp' must be",
    ),
    "a signature that is a number": (
        {**_delivered(), "signature": {**_delivered()["signature"], "signature": 5}},
        "'signature.signature' must be",
    ),
    "no event data": ({"signature": _delivered()["signature"]}, "'event-data' must be an object."),
    "event data that is a list": (
        {"signature": _delivered()["signature"], "event-data": [_delivered()["event-data"]]},
        "'event-data' must be an object.",
    ),
    "email_id ²": (_delivered(**{"user-variables": {"email_id": "²"}}), "'event-data.user-variables.email_id'"),
    "email_id a number": (_delivered(**{"user-variables": {"email_id": 1}}), "'event-data.user-variables.email_id'"),
    "an event timestamp of 1e20": (_delivered(timestamp=1e20), "'event-data.timestamp' must be"),
    "an event timestamp of 'nan'": (_delivered(timestamp="nan"), "'event-data.timestamp' must be"),
    "an event timestamp of 10^400": (_delivered(timestamp=10**400), "'event-data.timestamp' must be"),
    "an event that is a list": (_delivered(event=["delivered"]), "'event-data.event' must be"),
    "delivery status a list": (_delivered(**{"delivery-status": ["OK"]}), "'event-data.delivery-status' must be"),
    "a message id that is a number": (
        _delivered(message={"headers": {"message-id": 5}}),
        "'event-data.message.headers.message-id' must be",
    ),
    "user variables a list": (_delivered(**{"user-variables": ["1"]}), "'event-data.user-variables' must be"),
    "severity a list": (_delivered(severity=["permanent"]), "'event-data.severity' must be"),
    **{
        # Correctly signed, but PostgreSQL's text cannot hold NUL: a 500 there before this was refused.
        f"NUL in {name}": (body, "The body's strings must not contain NUL")
        for name, body in NUL_BODIES.items()
    },
}


def _post_malformed(client, body):
    if isinstance(body, tuple):
        raw, content_type = body
        return client.generic("POST", TRACKING_URL, raw, content_type=content_type)
    return post(client, body)


@pytest.mark.usefixtures("tracking")
@pytest.mark.parametrize(("body", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_tracking_body_is_a_clear_400_and_changes_nothing(client, sent, body, reason):
    response = _post_malformed(client, body)

    sent.refresh_from_db()
    assert (response.status_code, response["Content-Type"]) == (400, "text/plain")
    assert reason in response.content.decode()
    assert (sent.delivery_status, sent.delivery_updated_at) == ("", None)
    assert MailgunWebhookToken.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.usefixtures("tracking")
@pytest.mark.parametrize("body", NUL_BODIES.values(), ids=NUL_BODIES.keys())
def test_on_postgresql_a_signed_body_with_nul_is_a_400_not_a_500(client, sent, body):
    response = post(client, body)

    sent.refresh_from_db()
    assert response.status_code == 400
    assert (sent.delivery_status, sent.delivery_detail, sent.provider_message_id) == ("", "", MESSAGE_ID)
    assert MailgunWebhookToken.objects.count() == 0


@pytest.mark.usefixtures("tracking")
def test_an_email_id_of_ours_that_is_no_email_changes_nothing(client, sent):
    Email.objects.filter(pk=sent.pk).update(provider_message_id="")
    body = mailgun_event("delivered", at=1_800_000_000, message_id="<other@mg.cinema.example>")
    body["event-data"]["user-variables"] = {"email_id": "9" * 30}

    response = post(client, body)

    sent.refresh_from_db()
    assert response.status_code == 200
    assert sent.delivery_status == ""


def test_an_email_id_that_is_not_ascii_digits_finds_no_email(sent):
    Email.objects.filter(pk=sent.pk).update(provider_message_id="")

    for email_id in ("²", "٣", "9" * 30, "0", -1, ["1"], None):
        assert email_record_delivery(message_id=None, email_id=email_id, status="delivered", at=None, detail="") is None
    sent.refresh_from_db()
    assert sent.delivery_status == ""


# --- Replays: a signature is accepted once, and only while fresh (406: Mailgun does not retry) ---


@pytest.mark.usefixtures("tracking")
def test_a_replayed_signature_with_other_event_data_is_refused_with_406(client, sent):
    delivered = mailgun_event("delivered", at=1_800_000_000, token="token-once")
    complained = mailgun_event("complained", at=1_800_000_100, token="token-once")
    assert post(client, delivered).status_code == 200

    response = post(client, complained)

    sent.refresh_from_db()
    assert (response.status_code, response.content.decode()) == (
        406,
        "The webhook's signature token was already used.",
    )
    assert sent.delivery_status == "delivered"
    assert MailgunWebhookToken.objects.count() == 1


@pytest.mark.usefixtures("tracking")
def test_the_same_body_twice_is_applied_once(client, sent):
    body = mailgun_event("delivered", at=1_800_000_000)

    answers = [post(client, body).status_code for _ in range(2)]

    assert answers == [200, 406]


# Mailgun retries a webhook for 8 hours, with its original signature; the window is 9 hours.
WINDOW = 9 * 3600


@pytest.mark.usefixtures("tracking")
@pytest.mark.parametrize("seconds_from_now", [-WINDOW - 30, -WINDOW - 3600, -86400 * 365 * 6, 330, 3600, 86400])
def test_a_signature_outside_the_window_is_refused_with_406_and_changes_nothing(client, sent, seconds_from_now):
    # A correctly signed body from 2020, replayed, is the attack this refuses; so is one signed
    # more than 5 minutes ahead of our clock.
    body = mailgun_event("complained", at=1_800_000_000, signed_at=time.time() + seconds_from_now)

    response = post(client, body)

    sent.refresh_from_db()
    assert (response.status_code, response.content.decode()) == (
        406,
        "The webhook's signature timestamp is outside the replay window.",
    )
    assert sent.delivery_status == ""
    assert MailgunWebhookToken.objects.count() == 0


@pytest.mark.usefixtures("tracking")
@pytest.mark.parametrize(
    "seconds_from_now",
    [-290, 290, -330, -8 * 3600, -WINDOW + 30],
    ids=["just-signed", "clock-skew", "mailgun-first-retry", "mailgun-last-retry", "end-of-window"],
)
def test_a_signature_inside_the_window_is_accepted(client, sent, seconds_from_now):
    # Mailgun's retries of a webhook we failed (500) carry its original signature, for 8 hours:
    # a 406 to one of them would lose the event for good.
    body = mailgun_event("delivered", at=1_800_000_000, signed_at=time.time() + seconds_from_now)

    response = post(client, body)

    sent.refresh_from_db()
    assert response.status_code == 200
    assert sent.delivery_status == "delivered"


@pytest.mark.usefixtures("tracking")
def test_the_window_is_configurable(client, sent, settings):
    settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS = 30

    response = post(client, mailgun_event("delivered", at=1_800_000_000, signed_at=time.time() - 60))

    assert response.status_code == 406


@pytest.mark.usefixtures("tracking")
def test_a_body_whose_processing_failed_is_accepted_when_mailgun_sends_it_again(client, sent, monkeypatch):
    body = mailgun_event("delivered", at=1_800_000_000)
    real = tracking_receivers.email_record_delivery

    def fail_once(**kwargs):
        monkeypatch.setattr(tracking_receivers, "email_record_delivery", real)
        raise DatabaseError("the database went away")

    monkeypatch.setattr(tracking_receivers, "email_record_delivery", fail_once)
    failed = Client(raise_request_exception=False).post(TRACKING_URL, json.dumps(body), content_type="application/json")
    assert failed.status_code == 500
    assert MailgunWebhookToken.objects.count() == 0

    retried = post(client, body)

    sent.refresh_from_db()
    assert retried.status_code == 200
    assert sent.delivery_status == "delivered"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("tracking")
def test_the_same_body_twice_at_once_is_applied_once(sent, monkeypatch):
    # The first request holds its transaction (token inserted, email being updated) a moment: the
    # second one's insert waits on the unique index, then finds the token taken.
    body = json.dumps(mailgun_event("delivered", at=1_800_000_000))
    real, barrier, answers = tracking_receivers.email_record_delivery, threading.Barrier(2), []

    def slow(**kwargs):
        email = real(**kwargs)
        time.sleep(0.3)
        return email

    monkeypatch.setattr(tracking_receivers, "email_record_delivery", slow)

    def deliver():
        try:
            barrier.wait(timeout=10)
            answers.append(Client().post(TRACKING_URL, body, content_type="application/json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    sent.refresh_from_db()
    assert sorted(answers) == [200, 406]
    assert sent.delivery_status == "delivered"
    assert MailgunWebhookToken.objects.count() == 1


def test_tokens_are_forgotten_once_past_the_window():
    now = timezone.now()
    for name, age in (("old", WINDOW + 1), ("fresh", WINDOW - 1), ("ahead", -200)):
        MailgunWebhookToken.objects.create(token=name, signed_at=now - timedelta(seconds=age))

    answer = mail_tasks.forget_mailgun_webhook_tokens()

    assert answer == {"forgotten": 1}
    assert set(MailgunWebhookToken.objects.values_list("token", flat=True)) == {"fresh", "ahead"}


def test_forgetting_tokens_is_scheduled():
    assert MAIL_SCHEDULES["mail: forget Mailgun webhook tokens"] == ("mail.tasks.forget_mailgun_webhook_tokens", 10)


def test_the_service_applies_a_fresh_webhook_once_and_a_stale_or_replayed_one_never():
    # given a webhook's effect, counted
    applied: list[str] = []
    now = timezone.now()

    # when one token comes twice, and others signed too long ago or too far ahead
    verdicts = [
        mailgun_webhook_accept(token=token, signed_at=now + skew, apply=lambda t=token: applied.append(t), now=now)
        for token, skew in (
            ("fresh", timedelta(seconds=-60)),
            ("fresh", timedelta(seconds=-60)),
            ("stale", timedelta(hours=-10)),
            ("ahead", timedelta(minutes=6)),
        )
    ]

    # then only the fresh one was applied, and only its token is remembered
    assert verdicts == [
        MailgunWebhookVerdict.ACCEPTED,
        MailgunWebhookVerdict.REPLAYED,
        MailgunWebhookVerdict.STALE,
        MailgunWebhookVerdict.STALE,
    ]
    assert applied == ["fresh"]
    assert list(MailgunWebhookToken.objects.values_list("token", flat=True)) == ["fresh"]


def test_a_failing_effect_forgets_the_token_with_it():
    def fail() -> None:
        raise DatabaseError("the database went away")

    with pytest.raises(DatabaseError):
        mailgun_webhook_accept(token="failing", signed_at=timezone.now(), apply=fail)

    assert not MailgunWebhookToken.objects.exists()
