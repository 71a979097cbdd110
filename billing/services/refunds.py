"""Refunds at YooKassa, the state machine: open one (committed with its own key before YooKassa
is asked), create it there, and apply what the API says. A refund that ends its subscription (a
cancellation with a refund) ends it when it succeeds; one YooKassa cancels leaves it as it was.

Who asks for a refund and why lives elsewhere (services.cancellation, services.operator_actions,
services.subscriptions for money that arrived unwanted); this module knows none of them.
"""

import logging
import uuid

from django.db import transaction

from billing import clock, locks
from billing.errors import NotRefundable, ProviderRejected
from billing.events import BillingEventType, RefundCreated, RefundProviderConflict, RefundSucceeded
from billing.events import RefundCanceled as RefundCanceledPayload
from billing.gateway import get_gateway
from billing.gateway.interface import NewRefund, ProviderRefund, ProviderRefundStatus
from billing.models import (
    Payment,
    Refund,
    RefundInitiator,
    RefundStatus,
    SubscriptionStatus,
    first_provider_check_at,
)
from billing.money import Money
from billing.services.ending import subscription_end
from billing.services.events import event_record_for_refund
from billing.services.provider_calls import (
    provider_create,
    provider_receipt,
    provider_row_close_never_created,
    provider_state_apply,
)

logger = logging.getLogger(__name__)


def refund_open(
    *,
    payment: Payment,
    amount: Money,
    reason: str,
    initiator: RefundInitiator,
    operator=None,
    ends_subscription: bool = False,
) -> Refund:
    """Commit a refund of `amount` with its own Idempotence-Key (YooKassa is asked after commit).

    Call with the payment locked: what is refunded or in flight never exceeds what was paid.
    """
    if amount > payment.refundable_left():
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
    event_record_for_refund(refund, BillingEventType.REFUND_CREATED, RefundCreated(amount=refund.amount))
    return refund


def refund_create_at_provider(*, refund: Refund) -> Refund:
    """Ask YooKassa for the refund under its own key (the first time, or again after a failure).

    Raises GatewayError with the refund as it now stands (`error.result["refund"]`).
    """
    return provider_create(
        refund,
        kind="refund",
        call=lambda: get_gateway().create_refund(_new_refund_request(refund), idempotence_key=refund.idempotence_key),
        apply=lambda provider_refund: refund_apply_provider_state(provider_refund=provider_refund),
        reject=lambda error: refund_mark_rejected(refund=refund, error=error),
    )


def _new_refund_request(refund: Refund) -> NewRefund:
    """Only from the rows, so a retry is the very same request."""
    payment = refund.payment
    receipt = provider_receipt(payment, refund.money)
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
        refund = locks.refund_for_provider_object(provider_refund)
        changed = []
        if refund.provider_refund_id != provider_refund.id:
            refund.provider_refund_id = provider_refund.id
            changed.append("provider_refund_id")
        if refund.provider_object != provider_refund.raw:
            refund.provider_object = dict(provider_refund.raw)
            changed.append("provider_object")
        return provider_state_apply(
            refund,
            target=_LOCAL_STATUS[provider_refund.status],
            changed=changed,
            conflict=lambda target: _on_conflict(refund, target),
            moved=lambda target: _on_moved(refund, provider_refund, target),
        )


_LOCAL_STATUS = {
    ProviderRefundStatus.PENDING: RefundStatus.PENDING,
    ProviderRefundStatus.SUCCEEDED: RefundStatus.SUCCEEDED,
    ProviderRefundStatus.CANCELED: RefundStatus.CANCELED,
}


def _on_conflict(refund: Refund, target: RefundStatus) -> None:
    logger.error("YooKassa says refund %s is %s but it is %s here", refund.id, target, refund.status)
    event_record_for_refund(refund, BillingEventType.REFUND_PROVIDER_CONFLICT, RefundProviderConflict())


def _on_moved(refund: Refund, provider_refund: ProviderRefund, target: RefundStatus) -> list[str]:
    payment = refund.payment
    if target == RefundStatus.SUCCEEDED:
        refund.refunded_at = clock.domain_now()
        payment.refunded_amount += refund.amount
        payment.save(update_fields=["refunded_amount", "updated_at"])
        event_record_for_refund(refund, BillingEventType.REFUND_SUCCEEDED, RefundSucceeded(amount=refund.amount))
        if refund.ends_subscription:
            _end_subscription(payment, refund)
        return ["refunded_at"]
    if target == RefundStatus.CANCELED:
        fields = []
        if provider_refund.cancellation is not None:
            refund.cancellation_party = provider_refund.cancellation.party
            refund.cancellation_reason = provider_refund.cancellation.reason
            fields = ["cancellation_party", "cancellation_reason"]
        logger.warning("YooKassa canceled refund %s (%s)", refund.id, refund.cancellation_reason)
        event_record_for_refund(
            refund, BillingEventType.REFUND_CANCELED, RefundCanceledPayload(reason=refund.cancellation_reason)
        )
        return fields
    return []


def refund_mark_rejected(*, refund: Refund, error: ProviderRejected) -> Refund:
    """YooKassa refused the refund: it never existed there; the subscription stays as it was."""
    return _close_never_created(refund, rejection=error)


def refund_close_unsent(*, refund: Refund) -> Refund:
    """YooKassa never confirmed the refund and its key is forgotten: it was never made."""
    return _close_never_created(refund, rejection=None)


def _close_never_created(refund: Refund, *, rejection: ProviderRejected | None) -> Refund:
    def lock() -> Refund:
        payment = locks.payments_for_update().get(pk=refund.payment_id)
        locked = locks.refunds_for_update().get(pk=refund.pk)
        locked.payment = payment
        return locked

    def record(refund: Refund, reason: str) -> None:
        event_record_for_refund(refund, BillingEventType.REFUND_CANCELED, RefundCanceledPayload(reason=reason))

    return provider_row_close_never_created(lock, statuses=RefundStatus, rejection=rejection, record=record)


def _end_subscription(payment: Payment, refund: Refund) -> None:
    subscription = locks.subscriptions_for_update().get(pk=payment.subscription_id)
    if not subscription.is_running:
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
