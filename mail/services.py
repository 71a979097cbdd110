"""Emails from billing's outbox: one per event, rendered once, sent at least once.

`email_create_for_events` reads a recent window of the outbox (by `created_at`, not by "the last
id seen": ids are taken at insert, so an event whose transaction commits late can carry a smaller
id than one already handled) and inserts the missing emails; the unique (event, template) makes a
second dispatcher's insert a no-op. `email_send_ready` claims due rows with SKIP LOCKED under a
lease and hands them to Django's mail API (Anymail's backend in production).

At-least-once: an email can go out twice in one window only, when the provider accepted it but
the worker died (or lost the database) before recording SENT; after the lease another worker
sends it again. A send outliving its lease (the backend's own timeout, 30 s for Anymail, is far
shorter) would be the same window.
"""

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Exists, Min, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone, translation

from billing.models import BillingEvent
from mail.messages import MAIL_EVENT_TYPES, Message, message_compose
from mail.models import CLAIMABLE_STATUSES, Email, EmailStatus, MailgunWebhookToken
from mail.queueing import enqueue

logger = logging.getLogger(__name__)

# A claimed email that is neither sent nor failed by then is claimed again (its worker died).
SEND_LEASE = timedelta(minutes=5)
# Failures no retry can fix: the provider refused every recipient, or the address is malformed.
PERMANENT_FAILURES = (AnymailRecipientsRefused, AnymailInvalidAddress)
# The largest id a BigAutoField holds, and its length in digits.
MAX_ID = 2**63 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
# Mailgun signs a webhook when it posts it: a signature from the future is only our clocks disagreeing.
MAILGUN_WEBHOOK_MAX_CLOCK_SKEW_SECONDS = 300


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed}


# --- from events to emails -----------------------------------------------------------------------


def email_create_for_events(*, now: datetime | None = None, page_size: int = 200) -> int:
    """Insert the email of every mail-relevant event of the lookback window that has none yet.

    Returns how many emails this run composed (a concurrent run may have inserted some first)."""
    now = now or timezone.now()
    since = now - timedelta(hours=settings.MAIL_EVENT_LOOKBACK_HOURS)
    # The window's lowest id, found through the created_at index; from there the id index bounds the scan.
    floor = BillingEvent.objects.filter(created_at__gte=since).aggregate(floor=Min("id"))["floor"]
    if floor is None:
        return 0
    unmailed = (
        BillingEvent.objects.filter(type__in=MAIL_EVENT_TYPES)
        .exclude(Exists(Email.objects.filter(event=OuterRef("pk"))))
        .select_related("subscription__plan", "subscription__payment_method", "payment", "refund__payment")
        .order_by("id")
    )
    composed = 0
    after = floor - 1
    while True:
        page = list(unmailed.filter(id__gt=after)[:page_size])
        emails = [email for event in page if (email := _email_for(event, now=now)) is not None]
        Email.objects.bulk_create(emails, ignore_conflicts=True)
        composed += len(emails)
        if len(page) < page_size:
            return composed
        after = page[-1].id


def _email_for(event: BillingEvent, *, now: datetime) -> Email | None:
    """The event's email, rendered; None (and an error logged) when it cannot be, so that one
    bad event does not hold up the others: it is tried again on the next run."""
    try:
        with timezone.override(settings.TIME_ZONE), translation.override("en"):
            message = message_compose(event=event)
            recipient = event.subscription.viewer_email if event.subscription else ""
            email = Email(event=event, template=message.template, recipient=recipient)
            if message.skip_reason:
                return _skipped(email, message.skip_reason)
            email.subject, email.body_text, email.body_html = _render(message)
    except Exception:
        logger.exception("Could not compose the email of billing event %s (%s)", event.pk, event.type)
        return None
    if not recipient:
        return _skipped(email, "no email address")
    email.status = EmailStatus.READY
    email.next_attempt_at = now
    return email


def _skipped(email: Email, reason: str) -> Email:
    email.status = EmailStatus.SKIPPED
    email.skip_reason = reason
    return email


def _render(message: Message) -> tuple[str, str, str]:
    context = {**message.context, "subject": message.subject, "support_email": settings.MAIL_SUPPORT_EMAIL}
    text = render_to_string(f"mail/{message.template}.txt", context)
    html = render_to_string(f"mail/{message.template}.html", context)
    # Template tags leave blank lines behind; a text email keeps at most one between paragraphs.
    text = re.sub(r"\n[ \t]*\n(\s*\n)+", "\n\n", text).strip() + "\n"
    return message.subject, text, html


# --- sending ---------------------------------------------------------------------------------------


def email_send_ready(*, time_budget: float = 60) -> SendReport:
    """Send every email whose time has come: READY ones, and SENDING ones whose lease ran out."""
    report = SendReport()
    deadline = time.monotonic() + time_budget
    while time.monotonic() < deadline:
        email = _claim_next()
        if email is None:
            break
        _send(email, report)
    return report


def _claim_next() -> Email | None:
    """Lock a due email no other sender holds and mark it SENDING under a lease.

    One at a time, so a slow provider never keeps a claimed email waiting past its lease. The
    attempt is counted here: an email that kills its worker every time still ends FAILED."""
    now = timezone.now()
    with transaction.atomic():
        email = (
            Email.objects.select_for_update(skip_locked=True)
            .filter(status__in=CLAIMABLE_STATUSES, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .first()
        )
        if email is None:
            return None
        email.status = EmailStatus.SENDING
        email.attempts += 1
        email.next_attempt_at = now + SEND_LEASE
        email.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    return email


def _send(email: Email, report: SendReport) -> None:
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.body_text, from_email=settings.DEFAULT_FROM_EMAIL, to=[email.recipient]
    )
    message.attach_alternative(email.body_html, "text/html")
    # Anymail passes these to Mailgun, whose tracking webhooks bring them back.
    message.tags = [email.template]
    message.metadata = {"email_id": str(email.pk)}
    try:
        message.send()
    except Exception as error:
        _record_failure(email, error, report)
        return
    # Anymail's id of the message (one recipient, so one id); other backends have none.
    message_id = getattr(getattr(message, "anymail_status", None), "message_id", None)
    message_id = "" if message_id is None or isinstance(message_id, set) else str(message_id)
    recorded = _still_ours(email).update(
        status=EmailStatus.SENT,
        sent_at=timezone.now(),
        provider_message_id=message_id,
        next_attempt_at=None,
        last_error="",
        updated_at=timezone.now(),
    )
    if not recorded:
        logger.warning("Email %s was sent after its lease ran out; another attempt may send it again", email.pk)
    report.sent += 1


def _record_failure(email: Email, error: Exception, report: SendReport) -> None:
    retry_minutes = settings.MAIL_RETRY_MINUTES
    description = f"{type(error).__name__}: {error}"[:2000]
    now = timezone.now()
    if isinstance(error, PERMANENT_FAILURES) or email.attempts > len(retry_minutes):
        _still_ours(email).update(
            status=EmailStatus.FAILED, next_attempt_at=None, last_error=description, updated_at=now
        )
        logger.error(
            "Email %s (%s to %s) failed for good after %s attempt(s): %s",
            email.pk,
            email.template,
            email.recipient,
            email.attempts,
            description,
        )
        report.failed += 1
        return
    delay = timedelta(minutes=retry_minutes[email.attempts - 1])
    _still_ours(email).update(
        status=EmailStatus.READY, next_attempt_at=now + delay, last_error=description, updated_at=now
    )
    logger.warning("Email %s failed (attempt %s), tried again in %s: %s", email.pk, email.attempts, delay, description)
    report.retrying += 1


def _still_ours(email: Email):
    """The row, if no other sender claimed it since (after our lease ran out)."""
    return Email.objects.filter(pk=email.pk, status=EmailStatus.SENDING, attempts=email.attempts)


# --- operators ---------------------------------------------------------------------------------


def email_send_again(*, email_ids: list[int]) -> int:
    """FAILED emails get a fresh series of tries, starting now; returns how many were FAILED."""
    now = timezone.now()
    with transaction.atomic():
        count = Email.objects.filter(pk__in=email_ids, status=EmailStatus.FAILED).update(
            status=EmailStatus.READY, attempts=0, next_attempt_at=now, updated_at=now
        )
        if count:
            transaction.on_commit(lambda: enqueue("mail.tasks.send_emails"), robust=True)
    return count


# --- delivery tracking -----------------------------------------------------------------------------


def email_record_delivery(
    *, message_id: str | None, email_id: Any, status: str, at: datetime | None, detail: str
) -> Email | None:
    """Record what the provider says became of a sent email; older news than what is recorded
    (webhooks arrive out of order) changes nothing. None when the email is not one of ours."""
    with transaction.atomic():
        email = _email_of_delivery(message_id, email_id)
        if email is None:
            return None
        if at is not None and email.delivery_updated_at is not None and at < email.delivery_updated_at:
            return email
        email.delivery_status = status
        email.delivery_detail = detail[:2000]
        email.delivery_updated_at = at or timezone.now()
        fields = ["delivery_status", "delivery_detail", "delivery_updated_at", "updated_at"]
        if message_id and not email.provider_message_id:
            # Sent, but the worker died before it recorded the provider's id.
            email.provider_message_id = message_id
            fields.append("provider_message_id")
        email.save(update_fields=fields)
    return email


def _email_of_delivery(message_id: str | None, email_id: Any) -> Email | None:
    """By the provider's id, else by the `email_id` metadata we sent: ASCII digits only ("²" is a
    digit to `isdigit` but no int), and no larger than an id column holds."""
    locked = Email.objects.select_for_update()
    email = locked.filter(provider_message_id=message_id).first() if message_id else None
    if email is None and _is_an_id(email_id):
        email = locked.filter(pk=int(email_id), provider_message_id__in=["", message_id or ""]).first()
    return email


def _is_an_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= MAX_ID_DIGITS
        and 0 < int(value) <= MAX_ID
    )


class MailgunWebhookVerdict(StrEnum):
    ACCEPTED = "accepted"
    STALE = "stale"
    REPLAYED = "replayed"


def mailgun_webhook_accept(
    *, token: str, signed_at: datetime, apply: Callable[[], None], now: datetime | None = None
) -> MailgunWebhookVerdict:
    """Apply a verified Mailgun webhook's events (`apply`) once, if its signature is fresh.

    Fresh: signed at most MAILGUN_WEBHOOK_MAX_AGE_SECONDS ago (by default longer than Mailgun's
    8 hours of retries, which carry the original signature: a shorter window would answer our own
    failure's retries 406, which Mailgun never retries) and at most
    MAILGUN_WEBHOOK_MAX_CLOCK_SKEW_SECONDS ahead. Once: its token is recorded in the transaction
    that applies the events, and tokens are remembered for the whole window, so replays are
    refused however long it is; a body whose processing failed is forgotten with its token and
    accepted when Mailgun sends it again."""
    now = now or timezone.now()
    age = (now - signed_at).total_seconds()
    if age > settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS or -age > MAILGUN_WEBHOOK_MAX_CLOCK_SKEW_SECONDS:
        return MailgunWebhookVerdict.STALE
    with transaction.atomic():
        if not mailgun_webhook_token_record(token=token, signed_at=signed_at):
            return MailgunWebhookVerdict.REPLAYED
        apply()
    return MailgunWebhookVerdict.ACCEPTED


def mailgun_webhook_token_record(*, token: str, signed_at: datetime) -> bool:
    """Remember a webhook signature's token; False when it was seen before (a replay).

    Call it inside the transaction that applies the webhook's events: if they fail, the token is
    forgotten with them and Mailgun's retry is accepted. A concurrent request with the same token
    waits on the unique index and then finds it taken."""
    try:
        with transaction.atomic():
            MailgunWebhookToken.objects.create(token=token, signed_at=signed_at)
    except IntegrityError:
        return False
    return True


def mailgun_webhook_token_delete_expired(*, now: datetime | None = None) -> int:
    """Forget tokens signed before the replay window (which covers Mailgun's retries): their
    timestamps are refused anyway."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS)
    deleted, _ = MailgunWebhookToken.objects.filter(signed_at__lt=cutoff).delete()
    return deleted
