"""Billing's writes. Each service is one unit: it locks what it changes (payment before
subscription, always in that order), records an event in the same transaction, and calls YooKassa
only outside a transaction, with a key already committed to the payment's row.
"""

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from billing import clock
from billing.errors import (
    AlreadySubscribed,
    EmailRequired,
    GatewayError,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidReturnUrl,
    PaymentInProgress,
    PlanNotFound,
    ProviderRejected,
)
from billing.gateway import get_gateway
from billing.gateway.interface import NewPayment, ProviderPayment, ProviderPaymentStatus, Receipt, ReceiptItem
from billing.models import (
    LIVE_SUBSCRIPTION_STATUSES,
    OPEN_PAYMENT_STATUSES,
    BillingEvent,
    ClientRequest,
    IllegalTransition,
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from plans.models import Plan

logger = logging.getLogger(__name__)

MAX_CLIENT_KEY_LENGTH = 128
_CHECKOUT_ATTEMPTS = 5


@dataclass(frozen=True)
class CheckoutResult:
    subscription: Subscription
    payment: Payment
    # Set when YooKassa could not be reached: the payment stays CREATING and a retry (or the
    # reconciliation) finishes it with the same Idempotence-Key.
    problem: GatewayError | None = None


class UnknownProviderPayment(Exception):
    """YooKassa told us about a payment this service never created."""


# --- checkout ------------------------------------------------------------------------------------


def subscription_start_checkout(
    *,
    viewer_id: uuid.UUID,
    viewer_email: str | None,
    plan_id: int,
    return_url: str,
    save_payment_method: bool,
    idempotency_key: str | None,
) -> CheckoutResult:
    """Start paying for a plan: the viewer gets a payment to confirm on YooKassa's page.

    A repeat with the same idempotency key returns the first result; a viewer whose payment for
    the plan is still pending gets that payment back; nothing charges the viewer twice.
    """
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_CLIENT_KEY_LENGTH:
        raise InvalidInput(f"An idempotency key has 1 to {MAX_CLIENT_KEY_LENGTH} characters.", field="idempotencyKey")
    plan = Plan.objects.active().filter(pk=plan_id).first()
    if plan is None:
        raise PlanNotFound("There is no such plan on sale.", field="planId")
    _check_return_url(return_url)
    if settings.YOOKASSA_RECEIPTS and not viewer_email:
        raise EmailRequired("A receipt must be emailed, and the viewer has no email address.")
    request = _Checkout(
        viewer_id=viewer_id,
        viewer_email=viewer_email or "",
        plan=plan,
        return_url=return_url,
        save_payment_method=save_payment_method,
        fingerprint=_fingerprint("subscribe", plan.pk, return_url, save_payment_method),
    )

    payment = _open_checkout(request, idempotency_key=idempotency_key)
    if payment.status == PaymentStatus.PENDING and _confirmation_may_have_lapsed(payment):
        payment = _recheck(payment)
        if payment.status == PaymentStatus.CANCELED and idempotency_key is None:
            # The viewer let the old payment lapse: this request is a new attempt.
            payment = _open_checkout(request, idempotency_key=None)
    problem = None
    if payment.status == PaymentStatus.CREATING:
        payment, problem = payment_create_at_provider(payment=payment)
    payment.subscription.refresh_from_db()
    return CheckoutResult(subscription=payment.subscription, payment=payment, problem=problem)


@dataclass(frozen=True)
class _Checkout:
    viewer_id: uuid.UUID
    viewer_email: str
    plan: Plan
    return_url: str
    save_payment_method: bool
    fingerprint: str


def _open_checkout(request: _Checkout, *, idempotency_key: str | None) -> Payment:
    """The payment this checkout is about, committed before anything is asked of YooKassa."""
    for _ in range(_CHECKOUT_ATTEMPTS):
        try:
            with transaction.atomic():
                if idempotency_key is not None:
                    earlier = ClientRequest.objects.filter(viewer_id=request.viewer_id, key=idempotency_key).first()
                    if earlier is not None:
                        if earlier.operation != "subscribe" or earlier.fingerprint != request.fingerprint:
                            raise IdempotencyKeyReused(
                                "This idempotency key was used for another request.", field="idempotencyKey"
                            )
                        return Payment.objects.select_related("subscription__plan").get(pk=earlier.payment_id)
                payment = _checkout_payment(request)
                if idempotency_key is not None:
                    ClientRequest.objects.create(
                        viewer_id=request.viewer_id,
                        key=idempotency_key,
                        operation="subscribe",
                        fingerprint=request.fingerprint,
                        subscription=payment.subscription,
                        payment=payment,
                    )
                return payment
        except IntegrityError:
            # Another request of this viewer committed first (same key, or a second live
            # subscription): the next round reads what it made.
            continue
    raise RuntimeError(f"Checkout of viewer {request.viewer_id} kept colliding with concurrent checkouts.")


def _checkout_payment(request: _Checkout) -> Payment:
    viewer_id, viewer_email, plan = request.viewer_id, request.viewer_email, request.plan
    live = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan")
        .filter(viewer_id=viewer_id, status__in=LIVE_SUBSCRIPTION_STATUSES)
        .first()
    )
    if live is None:
        subscription = Subscription.objects.create(
            viewer_id=viewer_id, viewer_email=viewer_email, plan=plan, status=SubscriptionStatus.PENDING
        )
        _record(subscription, "subscription.created", plan=plan.code)
        return _new_payment(subscription, request)
    if live.status != SubscriptionStatus.PENDING:
        raise AlreadySubscribed(f"You already have the {live.plan.name} subscription.", field="planId")
    if live.plan_id != plan.pk:
        raise PaymentInProgress(
            f"A payment for {live.plan.name} is in progress: finish it, or wait until it lapses.", field="planId"
        )
    if viewer_email and live.viewer_email != viewer_email:
        live.viewer_email = viewer_email
        live.save(update_fields=["viewer_email", "updated_at"])
    open_payment = live.payments.filter(status__in=OPEN_PAYMENT_STATUSES).select_related("subscription__plan").first()
    if open_payment is not None:
        return open_payment
    return _new_payment(live, request)


def _new_payment(subscription: Subscription, request: _Checkout) -> Payment:
    plan = subscription.plan
    payment_id = uuid.uuid4()
    payment = Payment.objects.create(
        id=payment_id,
        viewer_id=subscription.viewer_id,
        subscription=subscription,
        kind=PaymentKind.INITIAL,
        amount=plan.price,
        currency=plan.currency,
        description=f"{plan.name}, {plan.period}"[:128],
        # Derived from the row, so every retry of this payment, by any process, sends it.
        idempotence_key=f"payment-{payment_id}",
        return_url=request.return_url,
        save_payment_method=request.save_payment_method,
        receipt_email=subscription.viewer_email if settings.YOOKASSA_RECEIPTS else "",
        receipt_vat_code=settings.YOOKASSA_VAT_CODE if settings.YOOKASSA_RECEIPTS else None,
    )
    _record(subscription, "payment.created", payment=payment, amount=str(payment.amount), currency=payment.currency)
    return payment


def payment_create_at_provider(*, payment: Payment) -> tuple[Payment, GatewayError | None]:
    """Ask YooKassa for the payment under its own key (the first time, or again after a failure)."""
    try:
        provider_payment = get_gateway().create_payment(
            _new_payment_request(payment), idempotence_key=payment.idempotence_key
        )
    except ProviderRejected as error:
        if error.parameter == "Idempotence-Key":
            # The key is in use: a payment may exist under it. Never give up on that payment here.
            logger.error("YooKassa refused the key of payment %s: %s", payment.id, error)
            return payment, error
        return payment_mark_rejected(payment=payment, error=error), error
    except GatewayError as error:
        logger.warning("Payment %s not confirmed by YooKassa yet (%s); it keeps its key", payment.id, error)
        return payment, error
    return payment_apply_provider_state(provider_payment=provider_payment), None


def _new_payment_request(payment: Payment) -> NewPayment:
    """Only from the row: a retry sends the very same request, or YooKassa would refuse the key."""
    receipt = None
    if payment.receipt_email:
        receipt = Receipt(
            customer_email=payment.receipt_email,
            items=(
                ReceiptItem(
                    description=payment.description, unit_price=payment.money, vat_code=payment.receipt_vat_code
                ),
            ),
        )
    return NewPayment(
        amount=payment.money,
        description=payment.description,
        metadata={
            "payment_id": str(payment.id),
            "subscription_id": str(payment.subscription_id),
            "viewer_id": str(payment.viewer_id),
        },
        return_url=payment.return_url,
        save_payment_method=payment.save_payment_method,
        receipt=receipt,
    )


def _confirmation_may_have_lapsed(payment: Payment) -> bool:
    return payment.created_at < clock.now() - timedelta(seconds=settings.CHECKOUT_RECHECK_PENDING_AFTER)


def _recheck(payment: Payment) -> Payment:
    try:
        return payment_refresh(provider_payment_id=payment.provider_payment_id)
    except GatewayError as error:
        logger.warning("Could not recheck payment %s: %s", payment.id, error)
        return payment


# --- what YooKassa says happened ----------------------------------------------------------------------


def payment_refresh(*, provider_payment_id: str) -> Payment:
    """Fetch the payment from YooKassa and apply what it says (webhooks, reconciliation)."""
    return payment_apply_provider_state(provider_payment=get_gateway().get_payment(provider_payment_id))


def payment_apply_provider_state(*, provider_payment: ProviderPayment) -> Payment:
    """Bring our payment (and its subscription) to what YooKassa's API says: the one place that does.

    Webhooks, checkout and reconciliation all come here with an object fetched from the API. Late
    and repeated news is a no-op; a move the state machine forbids is logged and left alone.
    """
    with transaction.atomic():
        payment = _lock_payment(provider_payment)
        target = _local_status(provider_payment.status)
        fields = _record_provider_object(payment, provider_payment)
        if target == payment.status:
            if fields:
                payment.save(update_fields=[*fields, "updated_at"])
            return payment
        try:
            payment.move_to(target)
        except IllegalTransition:
            logger.error(
                "YooKassa says payment %s is %s but it is %s here: left for an operator",
                payment.id,
                provider_payment.status,
                payment.status,
            )
            _record(
                payment.subscription,
                "payment.provider_conflict",
                payment=payment,
                provider_status=provider_payment.status,
            )
            return payment
        fields.append("status")
        if target == PaymentStatus.SUCCEEDED:
            fields += _on_succeeded(payment, provider_payment)
        elif target == PaymentStatus.CANCELED:
            fields += _on_canceled(payment, provider_payment)
        payment.save(update_fields=[*fields, "updated_at"])
        return payment


def payment_mark_rejected(*, payment: Payment, error: ProviderRejected) -> Payment:
    """YooKassa refused to create the payment: it never existed there, so it ends here."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",)).select_related("subscription__plan").get(pk=payment.pk)
        )
        if payment.status != PaymentStatus.CREATING:
            return payment
        payment.move_to(PaymentStatus.CANCELED)
        payment.cancellation_party = "billing"
        payment.cancellation_reason = "rejected_by_provider"
        payment.provider_object = {"error": {"code": error.provider_code, "description": error.message}}
        payment.save(
            update_fields=["status", "cancellation_party", "cancellation_reason", "provider_object", "updated_at"]
        )
        _after_failed_attempt(payment)
    return payment


def _lock_payment(provider_payment: ProviderPayment) -> Payment:
    locked = Payment.objects.select_for_update(of=("self",)).select_related("subscription__plan")
    payment = locked.filter(provider_payment_id=provider_payment.id).first()
    if payment is None:
        # Created, but the process died before it recorded YooKassa's answer: the metadata,
        # which came from the API, says which row it was.
        # Locked by its key alone: a concurrent request that records the id first must not make
        # the row vanish from this query when the lock is granted (PostgreSQL re-checks the WHERE).
        local_id = provider_payment.metadata.get("payment_id")
        try:
            payment = locked.filter(pk=uuid.UUID(local_id)).first() if local_id else None
        except ValueError:
            payment = None
        if payment is not None and payment.provider_payment_id not in (None, provider_payment.id):
            payment = None
    if payment is None:
        raise UnknownProviderPayment(f"YooKassa payment {provider_payment.id} is not one of ours.")
    return payment


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
    payment.paid_at = provider_payment.captured_at or clock.now()
    fields = ["paid_at"]
    method = provider_payment.payment_method
    if method is not None and method.saved:
        payment.payment_method = _save_payment_method(payment.viewer_id, method)
        fields.append("payment_method")
    _record(payment.subscription, "payment.succeeded", payment=payment, amount=str(payment.amount))
    if payment.kind == PaymentKind.INITIAL:
        _activate(payment)
    return fields


def _on_canceled(payment: Payment, provider_payment: ProviderPayment) -> list[str]:
    if provider_payment.cancellation is not None:
        payment.cancellation_party = provider_payment.cancellation.party
        payment.cancellation_reason = provider_payment.cancellation.reason
    _record(payment.subscription, "payment.canceled", payment=payment, reason=payment.cancellation_reason)
    _after_failed_attempt(payment)
    return ["cancellation_party", "cancellation_reason"]


def _activate(payment: Payment) -> None:
    subscription = (
        Subscription.objects.select_for_update(of=("self",)).select_related("plan").get(pk=payment.subscription_id)
    )
    if subscription.status != SubscriptionStatus.PENDING:
        # Money arrived for a subscription that is no longer waiting for it: an operator must
        # look (and refund); never a second period or a second subscription.
        logger.error(
            "Payment %s succeeded for subscription %s in status %s", payment.id, subscription.id, subscription.status
        )
        _record(subscription, "payment.succeeded_without_subscription", payment=payment)
        return
    subscription.move_to(SubscriptionStatus.ACTIVE)
    subscription.current_period_start = payment.paid_at
    subscription.current_period_end = subscription.plan.period.end_after(payment.paid_at)
    if payment.payment_method is not None:
        subscription.payment_method = payment.payment_method
        subscription.auto_renew = True
    subscription.save()
    payment.subscription = subscription
    _record(
        subscription,
        "subscription.activated",
        payment=payment,
        period_start=subscription.current_period_start.isoformat(),
        period_end=subscription.current_period_end.isoformat(),
    )


def _after_failed_attempt(payment: Payment) -> None:
    """A first payment that failed ends its subscription, unless another attempt is still open."""
    if payment.kind != PaymentKind.INITIAL:
        return
    subscription = Subscription.objects.select_for_update().get(pk=payment.subscription_id)
    still_open = subscription.payments.filter(status__in=OPEN_PAYMENT_STATUSES).exclude(pk=payment.pk).exists()
    if subscription.status == SubscriptionStatus.PENDING and not still_open:
        subscription.move_to(SubscriptionStatus.FAILED)
        subscription.save(update_fields=["status", "updated_at"])
        payment.subscription = subscription
        _record(subscription, "subscription.failed", payment=payment, reason=payment.cancellation_reason)


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


# --- helpers -----------------------------------------------------------------------------------------


def _record(subscription: Subscription, event_type: str, *, payment: Payment | None = None, **payload) -> None:
    BillingEvent.objects.create(
        type=event_type, viewer_id=subscription.viewer_id, subscription=subscription, payment=payment, payload=payload
    )


def _check_return_url(return_url: str) -> None:
    """YooKassa sends the viewer to this address: only to the cinema's own sites, never elsewhere."""
    try:
        parts = urlsplit(return_url or "")
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    secure_enough = parts is not None and (parts.scheme == "https" or (parts.scheme == "http" and settings.DEBUG))
    if not (secure_enough and host and _host_allowed(host) and not parts.username and len(return_url) <= 2048):
        raise InvalidReturnUrl(
            "The return URL must be an absolute https address on one of the cinema's sites.", field="returnUrl"
        )


def _host_allowed(host: str) -> bool:
    for pattern in settings.CHECKOUT_RETURN_URL_HOSTS:
        if host == pattern or (pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:])):
            return True
    return False


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
