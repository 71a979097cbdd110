from django.db import transaction

from billing.event_listeners import event_notify_listeners
from billing.models import BillingEvent, Payment, Refund, Subscription


def event_record(
    subscription: Subscription,
    event_type: str,
    *,
    payment: Payment | None = None,
    refund: Refund | None = None,
    **payload,
) -> BillingEvent:
    """Write what happened to the outbox, inside the caller's transaction; listeners hear of it after commit."""
    event = BillingEvent.objects.create(
        type=event_type,
        viewer_id=subscription.viewer_id,
        subscription=subscription,
        payment=payment,
        refund=refund,
        payload=payload,
    )
    transaction.on_commit(lambda: event_notify_listeners(event))
    return event
