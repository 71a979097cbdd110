"""Checkout: the viewer starts paying for a plan and gets a payment to confirm on YooKassa's page."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings

from billing import clock, locks
from billing.errors import (
    AlreadySubscribed,
    EmailRequired,
    GatewayError,
    InvalidReturnUrl,
    PaymentInProgress,
    PlanNotFound,
)
from billing.models import (
    LIVE_SUBSCRIPTION_STATUSES,
    OPEN_PAYMENT_STATUSES,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    first_provider_check_at,
)
from billing.services.client_requests import (
    KeyedRequest,
    atomic_retrying_conflicts,
    client_request_check_key,
    client_request_fingerprint,
)
from billing.services.events import event_record
from billing.services.payments import payment_create_at_provider, payment_refresh
from plans.models import Plan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckoutResult:
    subscription: Subscription
    payment: Payment
    # Set when YooKassa could not be reached: the payment stays CREATING and a retry (or the
    # reconciliation) finishes it with the same Idempotence-Key.
    problem: GatewayError | None = None


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
    client_request_check_key(idempotency_key)
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
        fingerprint=client_request_fingerprint("subscribe", plan.pk, return_url, save_payment_method),
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
    keyed = KeyedRequest(
        viewer_id=request.viewer_id,
        idempotency_key=idempotency_key,
        operation="subscribe",
        fingerprint=request.fingerprint,
    )

    def open_or_repeat() -> Payment:
        earlier = keyed.earlier()
        if earlier is not None:
            return Payment.objects.select_related("subscription__plan").get(pk=earlier.payment_id)
        payment = _checkout_payment(request)
        keyed.remember(subscription=payment.subscription, payment=payment)
        return payment

    # A conflict means another request of this viewer committed first (the same key, or a second
    # live subscription): the next round reads what it made.
    return atomic_retrying_conflicts(open_or_repeat)


def _checkout_payment(request: _Checkout) -> Payment:
    viewer_id, viewer_email, plan = request.viewer_id, request.viewer_email, request.plan
    live = locks.subscriptions_for_update().filter(viewer_id=viewer_id, status__in=LIVE_SUBSCRIPTION_STATUSES).first()
    if live is None:
        subscription = Subscription.objects.create(
            viewer_id=viewer_id, viewer_email=viewer_email, plan=plan, status=SubscriptionStatus.PENDING
        )
        event_record(subscription, "subscription.created", plan=plan.code)
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
        next_check_at=first_provider_check_at(),
    )
    event_record(
        subscription, "payment.created", payment=payment, amount=str(payment.amount), currency=payment.currency
    )
    return payment


def _confirmation_may_have_lapsed(payment: Payment) -> bool:
    return payment.created_at < clock.now() - timedelta(seconds=settings.CHECKOUT_RECHECK_PENDING_AFTER)


def _recheck(payment: Payment) -> Payment:
    try:
        return payment_refresh(provider_payment_id=payment.provider_payment_id)
    except GatewayError as error:
        logger.warning("Could not recheck payment %s: %s", payment.id, error)
        return payment


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
