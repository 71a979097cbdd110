"""Mail's listeners: billing's events (deliver soon after they commit; named in
BILLING_EVENT_LISTENERS) and Anymail's delivery tracking (what became of a sent email)."""

import logging

from anymail.signals import EventType, tracking
from django.core.cache import cache
from django.dispatch import receiver

from billing.models import BillingEvent
from mail.messages import MAIL_EVENT_TYPES
from mail.queueing import enqueue
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


def on_billing_event(event: BillingEvent) -> None:
    """Called by billing once the event is committed: deliver its email soon, not at the next schedule."""
    if event.type in MAIL_EVENT_TYPES and cache.add(DELIVERY_DEBOUNCE_KEY, True, timeout=DELIVERY_DEBOUNCE_SECONDS):
        enqueue("mail.tasks.deliver_emails")


@receiver(tracking, dispatch_uid="mail.record_delivery")
def record_delivery(sender, event, esp_name: str, **kwargs) -> None:
    """Only Mailgun's webhook is mounted (config/urls.py); anything else is not ours to trust."""
    if esp_name != "Mailgun" or event.event_type not in TRACKED_EVENTS:
        return
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    detail = next((text for text in (event.description, event.mta_response) if isinstance(text, str) and text), "")
    email = email_record_delivery(
        message_id=event.message_id,
        email_id=metadata.get("email_id"),
        status=event.event_type,
        at=event.timestamp,
        detail=detail,
    )
    if email is None:
        logger.info("Mailgun tracking event %s for an unknown message %s", event.event_type, event.message_id)
