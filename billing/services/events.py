import uuid

from django.db import transaction

from billing.event_listeners import event_notify_listeners
from billing.events import BillingEventType, EventPayload, event_type_check
from billing.models import BillingEvent, Payment, Refund, Subscription

# The events whose change can alter what the viewer may watch (billing.entitlements): recording
# one recomputes the viewer's entitlements, so no service has to remember to. Each is recorded
# after the change it describes is saved.
ENTITLEMENT_EVENT_TYPES = frozenset(
    {
        BillingEventType.SUBSCRIPTION_ACTIVATED,
        BillingEventType.SUBSCRIPTION_RENEWED,
        BillingEventType.SUBSCRIPTION_PAST_DUE,
        BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,
        BillingEventType.SUBSCRIPTION_CANCEL_SCHEDULED,
        BillingEventType.SUBSCRIPTION_CANCELED,
        BillingEventType.SUBSCRIPTION_EXPIRED,
    }
)


def event_record(
    subscription: Subscription | None,
    event_type: BillingEventType,
    payload: EventPayload,
    *,
    payment: Payment | None = None,
    refund: Refund | None = None,
    viewer_id: uuid.UUID | None = None,
) -> BillingEvent:
    """Write what happened to the outbox, inside the caller's transaction; listeners hear of it after commit.

    An event is about a subscription, or (entitlements.changed) about a viewer: then `subscription`
    is None and `viewer_id` says whose.
    """
    if not isinstance(event_type, BillingEventType):
        raise TypeError(f"An event type is a BillingEventType, not {event_type!r}.")
    if (subscription is None) == (viewer_id is None):
        raise TypeError("An event is about a subscription or, with viewer_id=, about a viewer: exactly one.")
    event_type_check(event_type, payload)
    event = BillingEvent.objects.create(
        type=event_type,
        viewer_id=subscription.viewer_id if subscription is not None else viewer_id,
        subscription=subscription,
        payment=payment,
        refund=refund,
        payload=payload.to_json(),
    )
    transaction.on_commit(lambda: event_notify_listeners(event))
    if event_type in ENTITLEMENT_EVENT_TYPES:
        # Imported here: entitlements records its own event through this module.
        from billing.services.entitlements import entitlements_sync

        entitlements_sync(viewer_id=event.viewer_id)
    return event


def event_record_for_payment(payment: Payment, event_type: BillingEventType, payload: EventPayload) -> BillingEvent:
    """`event_record` about a payment, on its subscription."""
    return event_record(payment.subscription, event_type, payload, payment=payment)


def event_record_for_refund(refund: Refund, event_type: BillingEventType, payload: EventPayload) -> BillingEvent:
    """`event_record` about a refund, on its payment's subscription (`refund.payment` as locked)."""
    return event_record(refund.payment.subscription, event_type, payload, payment=refund.payment, refund=refund)
