"""Cancellation and refunds: quote, refund once and only once, end the subscription when it succeeds.

A refund row with its own Idempotence-Key is committed (under the payment's lock, with the sum of
refunds checked) before YooKassa is asked; a retry sends the same key. A subscription canceled
"now, with a refund" ends when the refund succeeds; a refund YooKassa cancels leaves it as it was.
"""

import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing import clock, locks
from billing.errors import (
    AlreadyCanceled,
    BillingError,
    GatewayError,
    NotFound,
    NotRefundable,
    ProviderRejected,
    RefundCanceled,
    RefundInProgress,
    RefundQuoteChanged,
    SubscriptionNotActive,
)
from billing.events import (
    BillingEventType,
    RefundCreated,
    RefundProviderConflict,
    RefundSucceeded,
    SubscriptionCancelScheduled,
)
from billing.events import RefundCanceled as RefundCanceledPayload
from billing.gateway import get_gateway
from billing.gateway.interface import NewRefund, ProviderRefund, ProviderRefundStatus, Receipt, ReceiptItem
from billing.models import (
    OPEN_REFUND_STATUSES,
    IllegalTransition,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundInitiator,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    first_provider_check_at,
)
from billing.money import Money
from billing.refund_policy import RefundQuote, RefundRule, refund_quote
from billing.services.client_requests import (
    KeyedRequest,
    atomic_retrying_conflicts,
    client_request_check_key,
    client_request_fingerprint,
)
from billing.services.events import event_record
from billing.services.lifecycle import subscription_end
from billing.services.provider_calls import provider_create

logger = logging.getLogger(__name__)

CANCELABLE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class CancelMode(StrEnum):
    AT_PERIOD_END = "at_period_end"
    NOW_WITH_REFUND = "now_with_refund"


@dataclass(frozen=True)
class CancelResult:
    subscription: Subscription
    refund: Refund | None = None
    # Set when YooKassa could not be reached (the refund keeps its key for the retry), refused the
    # refund, or canceled it.
    problem: BillingError | None = None


class UnknownProviderRefund(Exception):
    """YooKassa told us about a refund this service never asked for."""


# --- quotes --------------------------------------------------------------------------------------


def subscription_refund_quote(*, subscription: Subscription) -> tuple[RefundQuote, Payment | None]:
    """What canceling now would give back, and the payment it would come from (to show; the
    cancellation quotes again with that payment locked)."""
    payment = _period_payment(subscription)
    return _quote(subscription, payment), payment


def _quote(subscription: Subscription, payment: Payment | None) -> RefundQuote:
    """The refund rule applied to `payment`, the current period's, as the caller picked it."""
    if (
        payment is None
        or subscription.status not in CANCELABLE_STATUSES
        # Money is on its way back already and the subscription ends with it: nothing more is on offer.
        or _cancellation_refund_in_flight(subscription)
    ):
        zero = Money.zero(subscription.plan.currency)
        return RefundQuote(zero, RefundRule.NOTHING_LEFT, subscription.current_period_end or clock.domain_now(), 0, 0)
    return refund_quote(
        paid=payment.money,
        # What is being refunded right now is not on offer again.
        already_refunded=Money(payment.refunded_amount + _in_flight_amount(payment), payment.currency),
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        now=clock.domain_now(),
        full_refund_days=settings.REFUND_FULL_WINDOW_DAYS,
        tz=ZoneInfo(settings.TIME_ZONE),
    )


def _in_flight_amount(payment: Payment):
    return sum((refund.amount for refund in payment.refunds.filter(status__in=OPEN_REFUND_STATUSES)), start=0)


def _cancellation_refund_in_flight(subscription: Subscription) -> bool:
    return Refund.objects.filter(
        payment__subscription=subscription, ends_subscription=True, status__in=OPEN_REFUND_STATUSES
    ).exists()


def _period_payment(subscription: Subscription) -> Payment | None:
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


# --- the viewer cancels --------------------------------------------------------------------------


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
    problem = None
    if refund.status == RefundStatus.CREATING:
        refund, problem = refund_create_at_provider(refund=refund)
    return CancelResult(
        subscription=Subscription.objects.select_related("plan").get(pk=subscription_id),
        refund=refund,
        problem=problem or _canceled_problem(refund),
    )


def _canceled_problem(refund: Refund) -> RefundCanceled | None:
    """A refund that ended canceled is a failure to report, never a success (a repeat included)."""
    if refund.status != RefundStatus.CANCELED:
        return None
    reason = f" ({refund.cancellation_reason})" if refund.cancellation_reason else ""
    return RefundCanceled(
        f"YooKassa declined the refund{reason}: no money was returned and the subscription is unchanged."
    )


def _cancel_at_period_end(request: KeyedRequest, subscription_id: uuid.UUID) -> CancelResult:
    """Stop renewing; access lasts to the period's end, when the expiry job ends the subscription.

    A past-due subscription's paid period is over already: it ends now (no refund, no more dunning).
    """
    subscription = _viewers(locks.subscriptions_for_update(), request.viewer_id, subscription_id)
    # Asked under the lock: the first request under this key may have committed while we waited.
    earlier = request.earlier()
    if earlier is not None:
        return CancelResult(subscription=Subscription.objects.get(pk=earlier.subscription_id))
    _check_cancelable(subscription)
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
    payment, subscription = _lock_period_payment(subscription)
    # Asked again under the locks: the first request under this key may have committed meanwhile.
    earlier = request.earlier()
    if earlier is not None:
        return Refund.objects.select_related("payment").get(pk=earlier.refund_id)
    _check_cancelable(subscription)
    refund = _refund_in_flight(payment)
    if refund is None:
        if _cancellation_refund_in_flight(subscription):
            raise RefundInProgress("A refund for this subscription is under way; its result comes shortly.")
        quote = _quote(subscription, payment)
        if not quote.refundable:
            raise NotRefundable("Nothing is left to refund for this period; cancel at the period's end instead.")
        refund = new_refund(
            payment,
            quote.amount,
            reason=f"Subscription canceled by the viewer ({quote.rule}).",
            initiator=RefundInitiator.VIEWER,
            ends_subscription=True,
        )
    request.remember(subscription=subscription, refund=refund)
    return refund


class _PeriodMoved(Exception):
    """A renewal started a new period between picking the period's payment and locking it."""


# A renewal commits once per period, so a second pick practically always holds.
PERIOD_PAYMENT_ATTEMPTS = 3


def _lock_period_payment(subscription: Subscription) -> tuple[Payment, Subscription]:
    """The current period's payment and its subscription, locked in billing.locks' order.

    The payment's lock comes first, so the payment is picked before any lock is held; it is picked
    again under the subscription's lock, where no renewal can move the period. If a renewal
    committed in between, the stale pick's locks are let go (a savepoint) and it starts over.
    """
    for _ in range(PERIOD_PAYMENT_ATTEMPTS):
        picked = _period_payment(subscription)
        if picked is None:
            raise SubscriptionNotActive("Nothing was paid for this subscription yet.")
        try:
            with transaction.atomic():
                payment = locks.payments_for_update().get(pk=picked.pk)
                subscription = locks.subscriptions_for_update().get(pk=subscription.pk)
                current = _period_payment(subscription)
                if current is None or current.pk != payment.pk:
                    raise _PeriodMoved
                payment.subscription = subscription
                return payment, subscription
        except _PeriodMoved:
            logger.info("Subscription %s renewed while its refund was being prepared; picking again", subscription.pk)
    raise RuntimeError(f"The period of subscription {subscription.pk} kept moving.")


def _refund_in_flight(payment: Payment) -> Refund | None:
    """A cancellation refund that never reached YooKassa is driven again; any other blocks a new one."""
    in_flight = payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).first()
    if in_flight is None:
        return None
    if in_flight.status == RefundStatus.CREATING and in_flight.ends_subscription:
        return in_flight
    raise RefundInProgress("A refund for this payment is under way; its result comes shortly.")


def _check_cancelable(subscription: Subscription) -> None:
    if subscription.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED):
        raise AlreadyCanceled("The subscription has already ended.")
    if subscription.status not in CANCELABLE_STATUSES:
        raise SubscriptionNotActive("The subscription is not active.")


def _viewers(queryset, viewer_id: uuid.UUID, subscription_id: uuid.UUID) -> Subscription:
    subscription = queryset.filter(pk=subscription_id, viewer_id=viewer_id).first()
    if subscription is None:
        raise NotFound("There is no such subscription.", field="subscriptionId")
    return subscription


# --- operators ---------------------------------------------------------------------------------


def subscription_cancel_with_refund_by_operator(
    *, subscription_id: uuid.UUID, operator, reason: str, expected_amount: Money | None = None
) -> CancelResult:
    """The admin's "cancel now with the policy's refund", recorded as the operator's.

    `expected_amount` is the refund the operator confirmed: when the quote differs by now, nothing
    is done.
    """
    with transaction.atomic():
        subscription = Subscription.objects.select_related("plan").get(pk=subscription_id)
        payment, subscription = _lock_period_payment(subscription)
        _check_cancelable(subscription)
        in_flight = payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).exists()
        if in_flight or _cancellation_refund_in_flight(subscription):
            raise RefundInProgress("A refund for this payment is under way.")
        quote = _quote(subscription, payment)
        if not quote.refundable:
            raise NotRefundable("Nothing is left to refund for this period.")
        if expected_amount is not None and quote.amount != expected_amount:
            raise RefundQuoteChanged(f"The refund is now {quote.amount}, not the {expected_amount} confirmed.")
        refund = new_refund(
            payment,
            quote.amount,
            reason=reason,
            initiator=RefundInitiator.OPERATOR,
            operator=operator,
            ends_subscription=True,
        )
    refund, problem = refund_create_at_provider(refund=refund)
    subscription.refresh_from_db()
    return CancelResult(subscription=subscription, refund=refund, problem=problem or _canceled_problem(refund))


def payment_refund_by_operator(
    *, payment_id: uuid.UUID, operator, reason: str, amount: Money | None = None
) -> tuple[Refund, BillingError | None]:
    """Give back what is left of a payment (or part of it); the subscription is not touched."""
    with transaction.atomic():
        payment = locks.payments_for_update().get(pk=payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise NotRefundable("Only a succeeded payment can be refunded.")
        if payment.refunds.filter(status__in=OPEN_REFUND_STATUSES).exists():
            raise RefundInProgress("A refund for this payment is under way.")
        left = payment.money - Money(payment.refunded_amount, payment.currency)
        amount = amount or left
        if not Money.zero(payment.currency) < amount <= left:
            raise NotRefundable(f"Between 0.01 and {left} can be refunded.", field="amount")
        refund = new_refund(payment, amount, reason=reason, initiator=RefundInitiator.OPERATOR, operator=operator)
    refund, problem = refund_create_at_provider(refund=refund)
    return refund, problem or _canceled_problem(refund)


# --- refunds at YooKassa -----------------------------------------------------------------------


def new_refund(
    payment: Payment,
    amount: Money,
    *,
    reason: str,
    initiator: RefundInitiator,
    operator=None,
    ends_subscription: bool = False,
) -> Refund:
    """Call with the payment locked: what is refunded or in flight never exceeds what was paid."""
    if payment.refunded_amount + _in_flight_amount(payment) + amount.amount > payment.amount:
        raise NotRefundable("That is more than is left of the payment.")
    refund_id = uuid.uuid4()
    refund = Refund.objects.create(
        id=refund_id,
        payment=payment,
        amount=amount.amount,
        currency=amount.currency,
        idempotence_key=f"refund-{refund_id}",
        reason=reason[:250],
        initiator=initiator,
        operator=operator,
        ends_subscription=ends_subscription,
        next_check_at=first_provider_check_at(),
    )
    event_record(
        payment.subscription,
        BillingEventType.REFUND_CREATED,
        RefundCreated(amount=refund.amount),
        payment=payment,
        refund=refund,
    )
    return refund


def refund_create_at_provider(*, refund: Refund) -> tuple[Refund, GatewayError | None]:
    """Ask YooKassa for the refund under its own key (the first time, or again after a failure)."""
    return provider_create(
        refund,
        call=lambda: get_gateway().create_refund(_new_refund_request(refund), idempotence_key=refund.idempotence_key),
        apply=lambda provider_refund: refund_apply_provider_state(provider_refund=provider_refund),
        reject=lambda error: refund_mark_rejected(refund=refund, error=error),
    )


def _new_refund_request(refund: Refund) -> NewRefund:
    """Only from the rows, so a retry is the very same request."""
    payment = refund.payment
    receipt = None
    if payment.receipt_email:
        receipt = Receipt(
            customer_email=payment.receipt_email,
            items=(
                ReceiptItem(
                    description=payment.description, unit_price=refund.money, vat_code=payment.receipt_vat_code
                ),
            ),
        )
    return NewRefund(
        provider_payment_id=payment.provider_payment_id,
        amount=refund.money,
        description=refund.reason,
        metadata={"refund_id": str(refund.id), "payment_id": str(payment.id)},
        receipt=receipt,
    )


def refund_refresh(*, provider_refund_id: str) -> Refund:
    """Fetch the refund from YooKassa and apply what it says (webhooks, reconciliation)."""
    return refund_apply_provider_state(provider_refund=get_gateway().get_refund(provider_refund_id))


def refund_apply_provider_state(*, provider_refund: ProviderRefund) -> Refund:
    """Bring the refund (its payment, and the subscription it ends) to what YooKassa's API says."""
    with transaction.atomic():
        found = _find_refund(provider_refund)
        payment = locks.payments_for_update().get(pk=found.payment_id)
        refund = locks.refunds_for_update().get(pk=found.pk)
        refund.payment = payment
        fields = []
        if refund.provider_refund_id != provider_refund.id:
            refund.provider_refund_id = provider_refund.id
            fields.append("provider_refund_id")
        if refund.provider_object != provider_refund.raw:
            refund.provider_object = dict(provider_refund.raw)
            fields.append("provider_object")
        target = {
            ProviderRefundStatus.PENDING: RefundStatus.PENDING,
            ProviderRefundStatus.SUCCEEDED: RefundStatus.SUCCEEDED,
            ProviderRefundStatus.CANCELED: RefundStatus.CANCELED,
        }[provider_refund.status]
        if target == refund.status:
            if fields:
                refund.save(update_fields=[*fields, "updated_at"])
            return refund
        try:
            refund.move_to(target)
        except IllegalTransition:
            logger.error("YooKassa says refund %s is %s but it is %s here", refund.id, target, refund.status)
            event_record(
                payment.subscription,
                BillingEventType.REFUND_PROVIDER_CONFLICT,
                RefundProviderConflict(),
                payment=payment,
                refund=refund,
            )
            return refund
        fields.append("status")
        if target == RefundStatus.SUCCEEDED:
            refund.refunded_at = clock.domain_now()
            fields.append("refunded_at")
            payment.refunded_amount += refund.amount
            payment.save(update_fields=["refunded_amount", "updated_at"])
            event_record(
                payment.subscription,
                BillingEventType.REFUND_SUCCEEDED,
                RefundSucceeded(amount=refund.amount),
                payment=payment,
                refund=refund,
            )
            if refund.ends_subscription:
                _end_subscription(payment, refund)
        elif target == RefundStatus.CANCELED:
            if provider_refund.cancellation is not None:
                refund.cancellation_party = provider_refund.cancellation.party
                refund.cancellation_reason = provider_refund.cancellation.reason
                fields += ["cancellation_party", "cancellation_reason"]
            logger.warning("YooKassa canceled refund %s (%s)", refund.id, refund.cancellation_reason)
            event_record(
                payment.subscription,
                BillingEventType.REFUND_CANCELED,
                RefundCanceledPayload(reason=refund.cancellation_reason),
                payment=payment,
                refund=refund,
            )
        refund.save(update_fields=[*fields, "updated_at"])
        return refund


def refund_mark_rejected(*, refund: Refund, error: ProviderRejected) -> Refund:
    """YooKassa refused the refund: it never existed there; the subscription stays as it was."""
    return _close_never_created(
        refund, reason="rejected_by_provider", detail={"code": error.provider_code, "description": error.message}
    )


def refund_close_unsent(*, refund: Refund) -> Refund:
    """YooKassa never confirmed the refund and its key is forgotten: it was never made."""
    return _close_never_created(refund, reason="never_reached_provider", detail={})


def _close_never_created(refund: Refund, *, reason: str, detail: dict) -> Refund:
    with transaction.atomic():
        payment = locks.payments_for_update().get(pk=refund.payment_id)
        refund = locks.refunds_for_update().get(pk=refund.pk)
        if refund.status != RefundStatus.CREATING:
            return refund
        refund.move_to(RefundStatus.CANCELED)
        refund.cancellation_party = "billing"
        refund.cancellation_reason = reason
        refund.provider_object = {"error": detail} if detail else None
        refund.save(
            update_fields=["status", "cancellation_party", "cancellation_reason", "provider_object", "updated_at"]
        )
        event_record(
            payment.subscription,
            BillingEventType.REFUND_CANCELED,
            RefundCanceledPayload(reason=reason),
            payment=payment,
            refund=refund,
        )
    return refund


def _find_refund(provider_refund: ProviderRefund) -> Refund:
    refund = Refund.objects.filter(provider_refund_id=provider_refund.id).first()
    if refund is None:
        # Asked for, but the process died before it recorded YooKassa's answer.
        try:
            local_id = uuid.UUID(provider_refund.metadata.get("refund_id", ""))
        except ValueError:
            local_id = None
        refund = Refund.objects.filter(pk=local_id).first() if local_id else None
        if refund is not None and refund.provider_refund_id not in (None, provider_refund.id):
            refund = None
    if refund is None:
        raise UnknownProviderRefund(f"YooKassa refund {provider_refund.id} is not one of ours.")
    return refund


def _end_subscription(payment: Payment, refund: Refund) -> None:
    subscription = locks.subscriptions_for_update().get(pk=payment.subscription_id)
    if subscription.status not in CANCELABLE_STATUSES:
        return
    subscription.cancel_at_period_end = False
    subscription_end(
        subscription,
        SubscriptionStatus.CANCELED,
        reason="refunded",
        payment=payment,
        refund=refund,
        refunded=refund.amount,
    )
