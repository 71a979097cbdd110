"""Ending a live subscription, canceled or expired: the one place that does."""

from decimal import Decimal

from billing import clock
from billing.events import BillingEventType, SubscriptionEnded
from billing.models import Payment, Refund, Subscription, SubscriptionStatus
from billing.services.events import event_record

_ENDED_EVENT_TYPES = {
    SubscriptionStatus.CANCELED: BillingEventType.SUBSCRIPTION_CANCELED,
    SubscriptionStatus.EXPIRED: BillingEventType.SUBSCRIPTION_EXPIRED,
}


def subscription_end(
    subscription: Subscription,
    status: SubscriptionStatus,
    *,
    reason: str,
    payment: Payment | None = None,
    refund: Refund | None = None,
    attempts: int | None = None,
    refunded: Decimal | None = None,
) -> None:
    """End a live subscription (call with it locked): canceled, or expired."""
    subscription.move_to(status)
    subscription.auto_renew = False
    subscription.next_renewal_attempt_at = None
    if status == SubscriptionStatus.CANCELED and subscription.canceled_at is None:
        subscription.canceled_at = clock.domain_now()
    subscription.save()
    event_record(
        subscription,
        _ENDED_EVENT_TYPES[status],
        SubscriptionEnded(reason=reason, attempts=attempts, refunded=refunded),
        payment=payment,
        refund=refund,
    )
