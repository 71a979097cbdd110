"""Mail's listeners: billing's events (deliver soon after they commit; named in
BILLING_EVENT_LISTENERS) and Anymail's delivery tracking (what became of a sent email)."""

import logging
import threading
import time

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
# After the cache (Redis) fails, it is left alone this long: a frozen Redis costs one request one
# socket timeout (REDIS_CACHE_SOCKET_TIMEOUT) per this many seconds, not every event its own.
CACHE_RETRY_AFTER_SECONDS = 30
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
    if event.type in MAIL_EVENT_TYPES and _first_in_debounce_window():
        enqueue("mail.tasks.deliver_emails")


class _Debounce:
    """Whether a delivery was enqueued in the last DELIVERY_DEBOUNCE_SECONDS: across processes through
    the cache; in this process only while the cache fails (fail open: deliveries are safe to run twice
    at once, and the one-minute schedule delivers anyway)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache_unavailable_until = 0.0
        self._local_window_ends = 0.0

    def first_in_window(self) -> bool:
        if time.monotonic() >= self._cache_unavailable_until:
            try:
                return cache.add(DELIVERY_DEBOUNCE_KEY, True, timeout=DELIVERY_DEBOUNCE_SECONDS)
            except Exception as exc:
                logger.warning("Mail's debounce cannot reach the cache (%r): debouncing in this process", exc)
                self._cache_unavailable_until = time.monotonic() + CACHE_RETRY_AFTER_SECONDS
        with self._lock:
            now = time.monotonic()
            if now < self._local_window_ends:
                return False
            self._local_window_ends = now + DELIVERY_DEBOUNCE_SECONDS
            return True


_debounce = _Debounce()


def _first_in_debounce_window() -> bool:
    return _debounce.first_in_window()


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
