"""The viewer cancels: at the period's end (no refund), or now with the refund the policy gives.

A cancellation with a refund commits the refund with its own key (services.refunds) before
YooKassa is asked, under the viewer's idempotency key: a repeat returns the first result. The
subscription ends when the refund succeeds; a refund YooKassa cancels leaves it as it was.
"""

import uuid
from dataclasses import dataclass
from enum import StrEnum

from billing import clock, locks
from billing.errors import (
    AlreadyCanceled,
    GatewayError,
    NotFound,
    NotRefundable,
    RefundCanceled,
    RefundInProgress,
    SubscriptionNotActive,
)
from billing.events import BillingEventType, SubscriptionCancelScheduled
from billing.models import (
    OPEN_REFUND_STATUSES,
    Payment,
    Refund,
    RefundInitiator,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from billing.selectors import cancellation_refunds_in_flight
from billing.services.client_requests import (
    KeyedRequest,
    atomic_retrying_conflicts,
    client_request_check_key,
    client_request_fingerprint,
)
from billing.services.ending import subscription_end
from billing.services.events import event_record
from billing.services.refund_quotes import period_payment_lock, refund_quote_for
from billing.services.refunds import refund_create_at_provider, refund_open


class CancelMode(StrEnum):
    AT_PERIOD_END = "at_period_end"
    NOW_WITH_REFUND = "now_with_refund"


@dataclass(frozen=True)
class CancelResult:
    subscription: Subscription
    refund: Refund | None = None


def subscription_cancel(
    *, viewer_id: uuid.UUID, subscription_id: uuid.UUID, mode: CancelMode, idempotency_key: str | None
) -> CancelResult:
    client_request_check_key(idempotency_key)
    request = KeyedRequest(
        viewer_id=viewer_id,
        idempotency_key=idempotency_key,
        operation="cancel_subscription",
        fingerprint=client_request_fingerprint("cancel_subscription", subscription_id, mode),
    )
    if mode is CancelMode.AT_PERIOD_END:
        return atomic_retrying_conflicts(lambda: _cancel_at_period_end(request, subscription_id))
    refund = atomic_retrying_conflicts(lambda: _open_cancellation_refund(request, subscription_id))
    try:
        if refund.status == RefundStatus.CREATING:
            refund = refund_create_at_provider(refund=refund)
        refund_check_not_canceled(refund)
    except (GatewayError, RefundCanceled) as error:
        # The refund is committed: it comes back with the error, and a retry under the same key
        # drives the same refund. (A GatewayError, or the refund's RefundCanceled.)
        error.with_result(subscription=Subscription.objects.select_related("plan").get(pk=subscription_id))
        raise
    return CancelResult(subscription=Subscription.objects.select_related("plan").get(pk=subscription_id), refund=refund)


def refund_check_not_canceled(refund: Refund) -> None:
    """A refund that ended canceled is a failure to report, never a success (a repeat included):
    RefundCanceled, carrying the refund."""
    if refund.status != RefundStatus.CANCELED:
        return
    reason = f" ({refund.cancellation_reason})" if refund.cancellation_reason else ""
    raise RefundCanceled(
        f"YooKassa declined the refund{reason}: no money was returned and the subscription is unchanged."
    ).with_result(refund=refund)


def _cancel_at_period_end(request: KeyedRequest, subscription_id: uuid.UUID) -> CancelResult:
    """Stop renewing; access lasts to the period's end, when the expiry job ends the subscription.

    A past-due subscription's paid period is over already: it ends now (no refund, no more dunning).
    """
    subscription = _viewers(locks.subscriptions_for_update(), request.viewer_id, subscription_id)
    # Asked under the lock: the first request under this key may have committed while we waited.
    earlier = request.earlier()
    if earlier is not None:
        return CancelResult(subscription=Subscription.objects.get(pk=earlier.subscription_id))
    subscription_check_cancelable(subscription)
    past_due = subscription.status == SubscriptionStatus.PAST_DUE
    if subscription.cancel_at_period_end and not past_due:
        raise AlreadyCanceled(f"The subscription already ends on {subscription.current_period_end:%Y-%m-%d}.")
    if Refund.objects.filter(payment__subscription=subscription, status__in=OPEN_REFUND_STATUSES).exists():
        raise RefundInProgress("A refund for this subscription is under way.")
    if past_due:
        subscription.cancel_at_period_end = False
        subscription_end(subscription, SubscriptionStatus.CANCELED, reason="canceled_while_past_due")
        request.remember(subscription=subscription)
        return CancelResult(subscription=subscription)
    subscription.cancel_at_period_end = True
    subscription.auto_renew = False
    subscription.canceled_at = clock.domain_now()
    subscription.save(update_fields=["cancel_at_period_end", "auto_renew", "canceled_at", "updated_at"])
    event_record(
        subscription,
        BillingEventType.SUBSCRIPTION_CANCEL_SCHEDULED,
        SubscriptionCancelScheduled(ends_at=subscription.current_period_end),
    )
    request.remember(subscription=subscription)
    return CancelResult(subscription=subscription)


def _open_cancellation_refund(request: KeyedRequest, subscription_id: uuid.UUID) -> Refund:
    """The refund that ends this subscription, committed before YooKassa is asked."""
    earlier = request.earlier()
    if earlier is not None:
        return Refund.objects.select_related("payment").get(pk=earlier.refund_id)
    subscription = _viewers(Subscription.objects.select_related("plan"), request.viewer_id, subscription_id)
    payment, subscription = period_payment_lock(subscription)
    # Asked again under the locks: the first request under this key may have committed meanwhile.
    earlier = request.earlier()
    if earlier is not None:
        return Refund.objects.select_related("payment").get(pk=earlier.refund_id)
    subscription_check_cancelable(subscription)
    refund = _refund_in_flight(payment)
    if refund is None:
        if cancellation_refunds_in_flight(subscription.pk).exists():
            raise RefundInProgress("A refund for this subscription is under way; its result comes shortly.")
        quote = refund_quote_for(subscription, payment)
        if not quote.refundable:
            raise NotRefundable("Nothing is left to refund for this period; cancel at the period's end instead.")
        refund = refund_open(
            payment=payment,
            amount=quote.amount,
            reason=f"Subscription canceled by the viewer ({quote.rule}).",
            initiator=RefundInitiator.VIEWER,
            ends_subscription=True,
        )
    request.remember(subscription=subscription, refund=refund)
    return refund


def _refund_in_flight(payment: Payment) -> Refund | None:
    """A cancellation refund that never reached YooKassa is driven again; any other blocks a new one."""
    in_flight = payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).first()
    if in_flight is None:
        return None
    if in_flight.status == RefundStatus.CREATING and in_flight.ends_subscription:
        return in_flight
    raise RefundInProgress("A refund for this payment is under way; its result comes shortly.")


def subscription_check_cancelable(subscription: Subscription) -> None:
    """Only a running subscription can be canceled (by the viewer or an operator)."""
    if subscription.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED):
        raise AlreadyCanceled("The subscription has already ended.")
    if not subscription.is_running:
        raise SubscriptionNotActive("The subscription is not active.")


def _viewers(queryset, viewer_id: uuid.UUID, subscription_id: uuid.UUID) -> Subscription:
    subscription = queryset.filter(pk=subscription_id, viewer_id=viewer_id).first()
    if subscription is None:
        raise NotFound("There is no such subscription.", field="subscriptionId")
    return subscription
