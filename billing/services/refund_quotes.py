"""What canceling now gives back: the refund rule applied to the payment of the current period,
and that payment found (and locked, for the services that refund it) even while a renewal moves
the period."""

import logging
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing import clock, locks
from billing.errors import SubscriptionNotActive
from billing.models import Payment, PaymentKind, PaymentStatus, Subscription
from billing.money import Money
from billing.refund_policy import RefundQuote, RefundRule, refund_quote
from billing.selectors import cancellation_refunds_in_flight

logger = logging.getLogger(__name__)

# A renewal commits once per period, so a second pick practically always holds.
PERIOD_PAYMENT_ATTEMPTS = 3


def subscription_refund_quote(*, subscription: Subscription) -> tuple[RefundQuote, Payment | None]:
    """What canceling now would give back, and the payment it would come from (to show; the
    cancellation quotes again with that payment locked)."""
    payment = period_payment(subscription)
    return refund_quote_for(subscription, payment), payment


def refund_quote_for(subscription: Subscription, payment: Payment | None) -> RefundQuote:
    """The refund rule applied to `payment`, the current period's, as the caller picked it."""
    if (
        payment is None
        or not subscription.is_running
        # Money is on its way back already and the subscription ends with it: nothing more is on offer.
        or cancellation_refunds_in_flight(subscription.pk).exists()
    ):
        zero = Money.zero(subscription.plan.currency)
        return RefundQuote(zero, RefundRule.NOTHING_LEFT, subscription.current_period_end or clock.domain_now(), 0, 0)
    return refund_quote(
        paid=payment.money,
        # What is being refunded right now is not on offer again.
        already_refunded=payment.money - payment.refundable_left(),
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        now=clock.domain_now(),
        full_refund_days=settings.REFUND_FULL_WINDOW_DAYS,
        tz=ZoneInfo(settings.TIME_ZONE),
    )


def period_payment(subscription: Subscription) -> Payment | None:
    """The payment that paid for the current period: the renewal for it, or in the first period
    the initial payment whose success started it (the period starts at its `paid_at`).

    Not simply the latest payment: money can arrive for a period nobody needs any more (and go back).
    """
    start = subscription.current_period_start
    if start is None:
        return None
    return (
        subscription.payments.filter(
            Q(kind=PaymentKind.RENEWAL, period_start=start) | Q(kind=PaymentKind.INITIAL, paid_at=start),
            status=PaymentStatus.SUCCEEDED,
        )
        .order_by("-paid_at")
        .first()
    )


class _PeriodMoved(Exception):
    """A renewal started a new period between picking the period's payment and locking it."""


def period_payment_lock(subscription: Subscription) -> tuple[Payment, Subscription]:
    """The current period's payment and its subscription, locked in billing.locks' order.

    The payment's lock comes first, so the payment is picked before any lock is held; it is picked
    again under the subscription's lock, where no renewal can move the period. If a renewal
    committed in between, the stale pick's locks are let go (a savepoint) and it starts over.
    """
    for _ in range(PERIOD_PAYMENT_ATTEMPTS):
        picked = period_payment(subscription)
        if picked is None:
            raise SubscriptionNotActive("Nothing was paid for this subscription yet.")
        try:
            with transaction.atomic():
                payment = locks.payments_for_update().get(pk=picked.pk)
                subscription = locks.subscriptions_for_update().get(pk=subscription.pk)
                current = period_payment(subscription)
                if current is None or current.pk != payment.pk:
                    raise _PeriodMoved
                payment.subscription = subscription
                return payment, subscription
        except _PeriodMoved:
            logger.info("Subscription %s renewed while its refund was being prepared; picking again", subscription.pk)
    raise RuntimeError(f"The period of subscription {subscription.pk} kept moving.")
