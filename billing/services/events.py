from django.db import transaction

from billing.event_listeners import event_notify_listeners
from billing.events import BillingEventType, EventPayload, event_type_check
from billing.models import BillingEvent, Payment, Refund, Subscription


def event_record(
    subscription: Subscription,
    event_type: BillingEventType,
    payload: EventPayload,
    *,
    payment: Payment | None = None,
    refund: Refund | None = None,
) -> BillingEvent:
    """Write what happened to the outbox, inside the caller's transaction; listeners hear of it after commit."""
    if not isinstance(event_type, BillingEventType):
        raise TypeError(f"An event type is a BillingEventType, not {event_type!r}.")
    event_type_check(event_type, payload)
    event = BillingEvent.objects.create(
        type=event_type,
        viewer_id=subscription.viewer_id,
        subscription=subscription,
        payment=payment,
        refund=refund,
        payload=payload.to_json(),
    )
    transaction.on_commit(lambda: event_notify_listeners(event))
    return event


def event_record_for_payment(payment: Payment, event_type: BillingEventType, payload: EventPayload) -> BillingEvent:
    """`event_record` about a payment, on its subscription."""
    return event_record(payment.subscription, event_type, payload, payment=payment)


def event_record_for_refund(refund: Refund, event_type: BillingEventType, payload: EventPayload) -> BillingEvent:
    """`event_record` about a refund, on its payment's subscription (`refund.payment` as locked)."""
    return event_record(refund.payment.subscription, event_type, payload, payment=refund.payment, refund=refund)
