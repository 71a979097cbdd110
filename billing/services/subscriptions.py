"""What a payment's outcome does to its subscription: start it, extend it, or dun it (services.dunning).

Called by `payments.payment_apply_provider_state` with the payment locked, inside its transaction;
each function locks the subscription (payment first, subscription second: see billing.locks).
"""

import contextlib
import logging

from django.db import transaction

from billing import locks
from billing.errors import GatewayError
from billing.events import (
    BillingEventType,
    SubscriptionActivated,
    SubscriptionFailed,
    SubscriptionRenewed,
)
from billing.models import (
    OPEN_PAYMENT_STATUSES,
    Payment,
    PaymentKind,
    Refund,
    RefundInitiator,
    Subscription,
    SubscriptionStatus,
)
from billing.selectors import cancellation_refunds_in_flight
from billing.services.dunning import subscription_dun
from billing.services.events import event_record
from billing.services.refunds import refund_create_at_provider, refund_open

logger = logging.getLogger(__name__)


def subscription_on_payment_succeeded(payment: Payment) -> None:
    subscription = locks.subscriptions_for_update().get(pk=payment.subscription_id)
    payment.subscription = subscription
    if payment.kind == PaymentKind.INITIAL and subscription.status == SubscriptionStatus.PENDING:
        _activate(subscription, payment)
        return
    if payment.kind == PaymentKind.RENEWAL:
        unwanted = _renewal_unwanted_because(subscription, payment)
    else:
        unwanted = str(subscription.status)
    if unwanted is None:
        _extend(subscription, payment)
        return
    # Money arrived for a period nobody needs any more (ended, canceled or switched off meanwhile,
    # or already paid): it goes back, in full, without an operator having to notice.
    logger.warning("Payment %s succeeded for subscription %s (%s): refunding it", payment.id, subscription.id, unwanted)
    _give_back(payment, reason=f"Paid after the subscription no longer needed it ({unwanted}).")


def subscription_on_payment_failed(payment: Payment) -> None:
    subscription = locks.subscriptions_for_update().get(pk=payment.subscription_id)
    payment.subscription = subscription
    if payment.kind == PaymentKind.INITIAL:
        still_open = subscription.payments.filter(status__in=OPEN_PAYMENT_STATUSES).exclude(pk=payment.pk).exists()
        if subscription.status == SubscriptionStatus.PENDING and not still_open:
            subscription.move_to(SubscriptionStatus.FAILED)
            subscription.save(update_fields=["status", "updated_at"])
            event_record(
                subscription,
                BillingEventType.SUBSCRIPTION_FAILED,
                SubscriptionFailed(reason=payment.cancellation_reason),
                payment=payment,
            )
    elif _renewal_unwanted_because(subscription, payment) is None:
        subscription_dun(subscription, payment)


def _activate(subscription: Subscription, payment: Payment) -> None:
    subscription.move_to(SubscriptionStatus.ACTIVE)
    subscription.current_period_start = payment.paid_at
    subscription.current_period_end = subscription.plan.period.end_after(payment.paid_at)
    if payment.payment_method is not None:
        subscription.payment_method = payment.payment_method
        subscription.auto_renew = True
    subscription.save()
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_ACTIVATED,
        SubscriptionActivated(
            period_start=subscription.current_period_start, period_end=subscription.current_period_end
        ),
        payment=payment,
    )


def _renewal_unwanted_because(subscription: Subscription, payment: Payment) -> str | None:
    """Why the subscription (locked) no longer wants the period this renewal pays for; None if it does.

    Asked when the charge's outcome arrives, which can be long after it was opened: the janitor
    re-sends a never-answered charge under its own key, because that is how we learn whether the
    first one happened. Whatever the viewer did meanwhile wins, and a renewal that succeeds when not
    wanted is given back. `auto_renew` is off once the viewer switched it off, removed the card or
    the card was revoked (each in the transaction that does it), and whenever the subscription
    ends at its period's end (a database constraint); a cancellation with a refund keeps it on
    until the refund succeeds, so that is asked separately.
    """
    if not subscription.is_running:
        return str(subscription.status)
    if payment.period_start != subscription.current_period_end:
        return "period already paid"
    if not subscription.auto_renew:
        return "auto-renewal off"
    if cancellation_refunds_in_flight(subscription.pk).exists():
        return "canceled with a refund"
    return None


def _extend(subscription: Subscription, payment: Payment) -> None:
    """The next period starts where the paid one ended: no day lost, none counted twice."""
    subscription.current_period_start = payment.period_start
    subscription.current_period_end = subscription.plan.period.end_after(payment.period_start)
    if subscription.status == SubscriptionStatus.PAST_DUE:
        subscription.move_to(SubscriptionStatus.ACTIVE)
    subscription.renewal_failures = 0
    subscription.past_due_since = None
    subscription.next_renewal_attempt_at = None
    subscription.save()
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_RENEWED,
        SubscriptionRenewed(period_start=subscription.current_period_start, period_end=subscription.current_period_end),
        payment=payment,
    )


def _give_back(payment: Payment, *, reason: str) -> None:
    left = payment.refundable_left()
    if left.amount <= 0:
        return
    refund = refund_open(payment=payment, amount=left, reason=reason, initiator=RefundInitiator.SYSTEM)
    transaction.on_commit(lambda: _send_give_back(refund))


def _send_give_back(refund: Refund) -> None:
    """After commit, nobody waits for the answer: a refund YooKassa did not confirm keeps its key
    for the janitor, one it refused is closed (provider_create logged both)."""
    with contextlib.suppress(GatewayError):
        refund_create_at_provider(refund=refund)
