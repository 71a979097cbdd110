"""What a payment's outcome does to its subscription: start it, extend it, or dun it.

Called by `payments.payment_apply_provider_state` with the payment locked, inside its transaction;
each function locks the subscription (payment first, subscription second: see billing.locks).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from billing import clock, locks
from billing.events import (
    AutoRenewOffReason,
    BillingEventType,
    SubscriptionActivated,
    SubscriptionAutoRenewChanged,
    SubscriptionFailed,
    SubscriptionPastDue,
    SubscriptionRenewalFailed,
    SubscriptionRenewed,
)
from billing.models import (
    OPEN_PAYMENT_STATUSES,
    PERMISSION_REVOKED,
    Payment,
    PaymentKind,
    RefundInitiator,
    Subscription,
    SubscriptionStatus,
)
from billing.money import Money
from billing.selectors import cancellation_refunds_in_flight
from billing.services.events import event_record
from billing.services.lifecycle import subscription_end
from billing.services.refunds import new_refund, refund_create_at_provider

logger = logging.getLogger(__name__)

LIVE_FOR_RENEWAL = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


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
        _dun(subscription, payment)


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
    if subscription.status not in LIVE_FOR_RENEWAL:
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


def _dun(subscription: Subscription, payment: Payment) -> None:
    """A renewal failed: past due, then retries on the dunning schedule, then the end."""
    now = clock.domain_now()
    subscription.renewal_failures += 1
    card_revoked = payment.cancellation_reason == PERMISSION_REVOKED
    if subscription.status == SubscriptionStatus.ACTIVE and not card_revoked:
        subscription.move_to(SubscriptionStatus.PAST_DUE)
        subscription.past_due_since = now
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_RENEWAL_FAILED,
        SubscriptionRenewalFailed(attempt=subscription.renewal_failures, reason=payment.cancellation_reason),
        payment=payment,
    )
    retry_days = settings.DUNNING_RETRY_DAYS
    if card_revoked:
        _stop_renewing_with_revoked_card(subscription, payment, now=now)
    elif subscription.renewal_failures > len(retry_days):
        subscription_end(
            subscription,
            SubscriptionStatus.EXPIRED,
            reason="renewal_failed",
            payment=payment,
            attempts=subscription.renewal_failures,
        )
    else:
        subscription.next_renewal_attempt_at = subscription.past_due_since + timedelta(
            days=retry_days[subscription.renewal_failures - 1]
        )
        subscription.save()
        event_record(
            subscription,
            BillingEventType.SUBSCRIPTION_PAST_DUE,
            SubscriptionPastDue(next_attempt_at=subscription.next_renewal_attempt_at),
        )


def _stop_renewing_with_revoked_card(subscription: Subscription, payment: Payment, *, now: datetime) -> None:
    """The viewer withdrew consent to autopayments: no more tries with this card, none at all.

    The charge runs ahead of the period's end (RENEWAL_LEAD_TIME_HOURS), and what was paid for stays
    the viewer's: the subscription keeps its status (an active one is not made past due, there is
    nothing left to retry) until its period is over. Then it expires, here if that moment has
    passed already, else by the expiry job (subscription_expire_due, reason permission_revoked).
    """
    payment.payment_method.is_active = False
    payment.payment_method.save(update_fields=["is_active"])
    subscription.auto_renew = False
    subscription.next_renewal_attempt_at = None
    if subscription.current_period_end <= now:
        subscription_end(subscription, SubscriptionStatus.EXPIRED, reason=PERMISSION_REVOKED, payment=payment)
        return
    subscription.save()
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_AUTO_RENEW_CHANGED,
        SubscriptionAutoRenewChanged(enabled=False, reason=AutoRenewOffReason.PERMISSION_REVOKED),
    )


def _give_back(payment: Payment, *, reason: str) -> None:
    left = payment.money - Money(payment.refunded_amount, payment.currency)
    if left.amount <= 0:
        return
    refund = new_refund(payment, left, reason=reason, initiator=RefundInitiator.SYSTEM)
    transaction.on_commit(lambda: refund_create_at_provider(refund=refund))
