"""Mail's listener on billing's outbox: rows of mail-relevant events start a delivery as soon as
their transaction commits (the one-minute schedule stays what guarantees it)."""

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django_q.tasks import async_task

from billing.models import BillingEvent
from mail.messages import MAIL_EVENT_TYPES

# A burst of events (a renewal batch) enqueues one delivery a second, not one per event; what a
# delivery started too early misses, the next one (or the one-minute schedule) picks up.
DELIVERY_DEBOUNCE_KEY = "mail:delivery-enqueued"
DELIVERY_DEBOUNCE_SECONDS = 1


@receiver(post_save, sender=BillingEvent, dispatch_uid="mail.deliver_after_commit")
def deliver_after_commit(sender, instance: BillingEvent, created: bool, **kwargs) -> None:
    if created and instance.type in MAIL_EVENT_TYPES:
        # robust: the billing change is committed already; a failure here must not reach its caller.
        transaction.on_commit(_enqueue_delivery, robust=True)


def _enqueue_delivery() -> None:
    if cache.add(DELIVERY_DEBOUNCE_KEY, True, timeout=DELIVERY_DEBOUNCE_SECONDS):
        async_task("mail.tasks.deliver_emails")
