"""Payments at YooKassa: creating them under their own key, and applying what the API says."""

import logging
import uuid

from django.db import transaction

from billing import clock, locks
from billing.errors import ProviderRejected
from billing.events import BillingEventType, PaymentCanceled, PaymentProviderConflict, PaymentSucceeded
from billing.gateway import get_gateway
from billing.gateway.interface import NewPayment, ProviderPayment, ProviderPaymentStatus
from billing.models import (
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentStatus,
)
from billing.services.events import event_record_for_payment
from billing.services.provider_calls import (
    provider_create,
    provider_receipt,
    provider_row_close_never_created,
    provider_state_apply,
)
from billing.services.subscriptions import subscription_on_payment_failed, subscription_on_payment_succeeded

logger = logging.getLogger(__name__)


def payment_create_at_provider(*, payment: Payment) -> Payment:
    """Ask YooKassa for the payment under its own key (the first time, or again after a failure).

    Raises GatewayError with the payment as it now stands (`error.result["payment"]`).
    """
    return provider_create(
        payment,
        kind="payment",
        call=lambda: get_gateway().create_payment(
            _new_payment_request(payment), idempotence_key=payment.idempotence_key
        ),
        apply=lambda provider_payment: payment_apply_provider_state(provider_payment=provider_payment),
        reject=lambda error: payment_mark_rejected(payment=payment, error=error),
    )


def _new_payment_request(payment: Payment) -> NewPayment:
    """Only from the row: a retry sends the very same request, or YooKassa would refuse the key."""
    receipt = provider_receipt(payment, payment.money)
    metadata = {
        "payment_id": str(payment.id),
        "subscription_id": str(payment.subscription_id),
        "viewer_id": str(payment.viewer_id),
    }
    if payment.kind == PaymentKind.RENEWAL:
        # An autopayment: the saved card is charged at once, nobody confirms it.
        return NewPayment(
            amount=payment.money,
            description=payment.description,
            metadata=metadata,
            payment_method_id=payment.payment_method.provider_method_id,
            receipt=receipt,
        )
    return NewPayment(
        amount=payment.money,
        description=payment.description,
        metadata=metadata,
        return_url=payment.return_url,
        save_payment_method=payment.save_payment_method,
        receipt=receipt,
    )


def payment_refresh(*, provider_payment_id: str) -> Payment:
    """Fetch the payment from YooKassa and apply what it says (webhooks, reconciliation)."""
    return payment_apply_provider_state(provider_payment=get_gateway().get_payment(provider_payment_id))


def payment_apply_provider_state(*, provider_payment: ProviderPayment) -> Payment:
    """Bring our payment (and its subscription) to what YooKassa's API says: the one place that does.

    Webhooks, checkout and reconciliation all come here with an object fetched from the API. Late
    and repeated news is a no-op; a move the state machine forbids is logged and left alone.
    """
    with transaction.atomic():
        payment = locks.payment_for_provider_object(provider_payment)
        return provider_state_apply(
            payment,
            target=_local_status(provider_payment.status),
            changed=_record_provider_object(payment, provider_payment),
            conflict=lambda target: _on_conflict(payment, provider_payment),
            moved=lambda target: _on_moved(payment, provider_payment, target),
        )


def _on_conflict(payment: Payment, provider_payment: ProviderPayment) -> None:
    logger.error(
        "YooKassa says payment %s is %s but it is %s here: left for an operator",
        payment.id,
        provider_payment.status,
        payment.status,
    )
    event_record_for_payment(
        payment,
        BillingEventType.PAYMENT_PROVIDER_CONFLICT,
        PaymentProviderConflict(provider_status=provider_payment.status),
    )


def _on_moved(payment: Payment, provider_payment: ProviderPayment, target: PaymentStatus) -> list[str]:
    if target == PaymentStatus.SUCCEEDED:
        return _on_succeeded(payment, provider_payment)
    if target == PaymentStatus.CANCELED:
        return _on_canceled(payment, provider_payment)
    return []


def payment_mark_rejected(*, payment: Payment, error: ProviderRejected) -> Payment:
    """YooKassa refused to create the payment: it never existed there, so it ends here."""
    return _close_never_created(payment, rejection=error)


def payment_close_unsent(*, payment: Payment) -> Payment:
    """YooKassa never confirmed the payment, its key is forgotten and no payment carries its id:
    it was never created, and no retry may create it now."""
    return _close_never_created(payment, rejection=None)


def _close_never_created(payment: Payment, *, rejection: ProviderRejected | None) -> Payment:
    def record(payment: Payment, reason: str) -> None:
        event_record_for_payment(payment, BillingEventType.PAYMENT_CANCELED, PaymentCanceled(reason=reason))
        subscription_on_payment_failed(payment)

    lock = lambda: locks.payments_for_update().get(pk=payment.pk)  # noqa: E731
    return provider_row_close_never_created(lock, statuses=PaymentStatus, rejection=rejection, record=record)


def _local_status(status: ProviderPaymentStatus) -> PaymentStatus:
    return {
        ProviderPaymentStatus.PENDING: PaymentStatus.PENDING,
        # Only reached with capture=false, which this service never asks for.
        ProviderPaymentStatus.WAITING_FOR_CAPTURE: PaymentStatus.PENDING,
        ProviderPaymentStatus.SUCCEEDED: PaymentStatus.SUCCEEDED,
        ProviderPaymentStatus.CANCELED: PaymentStatus.CANCELED,
    }[status]


def _record_provider_object(payment: Payment, provider_payment: ProviderPayment) -> list[str]:
    fields = []
    if payment.provider_payment_id != provider_payment.id:
        payment.provider_payment_id = provider_payment.id
        fields.append("provider_payment_id")
    if provider_payment.confirmation_url and payment.confirmation_url != provider_payment.confirmation_url:
        payment.confirmation_url = provider_payment.confirmation_url
        fields.append("confirmation_url")
    if payment.provider_object != provider_payment.raw:
        payment.provider_object = dict(provider_payment.raw)
        fields.append("provider_object")
    return fields


def _on_succeeded(payment: Payment, provider_payment: ProviderPayment) -> list[str]:
    payment.paid_at = provider_payment.captured_at or clock.domain_now()
    fields = ["paid_at"]
    method = provider_payment.payment_method
    if method is not None and method.saved and getattr(payment.payment_method, "provider_method_id", None) != method.id:
        payment.payment_method = _save_payment_method(payment.viewer_id, method)
        fields.append("payment_method")
    event_record_for_payment(payment, BillingEventType.PAYMENT_SUCCEEDED, PaymentSucceeded(amount=payment.amount))
    subscription_on_payment_succeeded(payment)
    return fields


def _on_canceled(payment: Payment, provider_payment: ProviderPayment) -> list[str]:
    if provider_payment.cancellation is not None:
        payment.cancellation_party = provider_payment.cancellation.party
        payment.cancellation_reason = provider_payment.cancellation.reason
    event_record_for_payment(
        payment, BillingEventType.PAYMENT_CANCELED, PaymentCanceled(reason=payment.cancellation_reason)
    )
    subscription_on_payment_failed(payment)
    return ["cancellation_party", "cancellation_reason"]


def _save_payment_method(viewer_id: uuid.UUID, method) -> PaymentMethod:
    saved, _ = PaymentMethod.objects.update_or_create(
        provider_method_id=method.id,
        defaults={
            "viewer_id": viewer_id,
            "type": method.type,
            "title": method.title,
            "card_last4": method.card_last4 or "",
            "card_type": method.card_type or "",
            "expiry_month": method.expiry_month or "",
            "expiry_year": method.expiry_year or "",
        },
    )
    return saved
