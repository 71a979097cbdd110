"""Mail's listeners: billing's outbox rows (deliver soon after they commit) and Anymail's
delivery tracking (what became of a sent email)."""

import logging

from anymail.signals import EventType, tracking
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django_q.tasks import async_task

from billing.models import BillingEvent
from mail.messages import MAIL_EVENT_TYPES
from mail.services import email_record_delivery

logger = logging.getLogger(__name__)

# A burst of events (a renewal batch) enqueues one delivery a second, not one per event; what a
# delivery started too early misses, the next one (or the one-minute schedule) picks up.
DELIVERY_DEBOUNCE_KEY = "mail:delivery-enqueued"
DELIVERY_DEBOUNCE_SECONDS = 1
TRACKED_EVENTS = {
    EventType.DELIVERED,
    EventType.DEFERRED,
    EventType.BOUNCED,
    EventType.REJECTED,
    EventType.FAILED,
    EventType.COMPLAINED,
}


@receiver(post_save, sender=BillingEvent, dispatch_uid="mail.deliver_after_commit")
def deliver_after_commit(sender, instance: BillingEvent, created: bool, **kwargs) -> None:
    if created and instance.type in MAIL_EVENT_TYPES:
        # robust: the billing change is committed already; a failure here must not reach its caller.
        transaction.on_commit(_enqueue_delivery, robust=True)


def _enqueue_delivery() -> None:
    if cache.add(DELIVERY_DEBOUNCE_KEY, True, timeout=DELIVERY_DEBOUNCE_SECONDS):
        async_task("mail.tasks.deliver_emails")


@receiver(tracking, dispatch_uid="mail.record_delivery")
def record_delivery(sender, event, esp_name: str, **kwargs) -> None:
    """Only Mailgun's webhook is mounted (config/urls.py); anything else is not ours to trust."""
    if esp_name != "Mailgun" or event.event_type not in TRACKED_EVENTS:
        return
    email = email_record_delivery(
        message_id=event.message_id,
        email_id=(event.metadata or {}).get("email_id"),
        status=event.event_type,
        at=event.timestamp,
        detail=event.description or event.mta_response or "",
    )
    if email is None:
        logger.info("Mailgun tracking event %s for an unknown message %s", event.event_type, event.message_id)
