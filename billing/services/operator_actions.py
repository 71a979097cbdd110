"""Operators' money actions from the admin: cancel now with the policy's refund, or give back
(part of) a payment. Each is recorded as the operator's, with their reason."""

import uuid

from django.db import transaction

from billing import locks
from billing.errors import GatewayError, NotRefundable, RefundCanceled, RefundInProgress, RefundQuoteChanged
from billing.models import OPEN_REFUND_STATUSES, PaymentStatus, Refund, RefundInitiator, Subscription
from billing.money import Money
from billing.selectors import cancellation_refunds_in_flight
from billing.services.cancellation import CancelResult, refund_check_not_canceled, subscription_check_cancelable
from billing.services.refund_quotes import period_payment_lock, refund_quote_for
from billing.services.refunds import refund_create_at_provider, refund_open


def subscription_cancel_with_refund_by_operator(
    *, subscription_id: uuid.UUID, operator, reason: str, expected_amount: Money | None = None
) -> CancelResult:
    """The admin's "cancel now with the policy's refund", recorded as the operator's.

    `expected_amount` is the refund the operator confirmed: when the quote differs by now, nothing
    is done.
    """
    with transaction.atomic():
        subscription = Subscription.objects.select_related("plan").get(pk=subscription_id)
        payment, subscription = period_payment_lock(subscription)
        subscription_check_cancelable(subscription)
        in_flight = payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).exists()
        if in_flight or cancellation_refunds_in_flight(subscription.pk).exists():
            raise RefundInProgress("A refund for this payment is under way.")
        quote = refund_quote_for(subscription, payment)
        if not quote.refundable:
            raise NotRefundable("Nothing is left to refund for this period.")
        if expected_amount is not None and quote.amount != expected_amount:
            raise RefundQuoteChanged(f"The refund is now {quote.amount}, not the {expected_amount} confirmed.")
        refund = refund_open(
            payment=payment,
            amount=quote.amount,
            reason=reason,
            initiator=RefundInitiator.OPERATOR,
            operator=operator,
            ends_subscription=True,
        )
    try:
        refund = refund_create_at_provider(refund=refund)
        refund_check_not_canceled(refund)
    except (GatewayError, RefundCanceled) as error:
        subscription.refresh_from_db()
        error.with_result(subscription=subscription)
        raise
    subscription.refresh_from_db()
    return CancelResult(subscription=subscription, refund=refund)


def payment_refund_by_operator(*, payment_id: uuid.UUID, operator, reason: str, amount: Money | None = None) -> Refund:
    """Give back what is left of a payment (or part of it); the subscription is not touched.

    A failure once the refund is committed (YooKassa unreachable or refusing, the refund canceled)
    is raised with the refund (`error.result["refund"]`)."""
    with transaction.atomic():
        payment = locks.payments_for_update().get(pk=payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise NotRefundable("Only a succeeded payment can be refunded.")
        if payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).exists():
            raise RefundInProgress("A refund for this payment is under way.")
        left = payment.refundable_left()
        amount = amount or left
        if not Money.zero(payment.currency) < amount <= left:
            raise NotRefundable(f"Between 0.01 and {left} can be refunded.", field="amount")
        refund = refund_open(
            payment=payment, amount=amount, reason=reason, initiator=RefundInitiator.OPERATOR, operator=operator
        )
    refund = refund_create_at_provider(refund=refund)
    refund_check_not_canceled(refund)
    return refund
