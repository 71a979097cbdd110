"""Checkout: the viewer starts paying for a plan and gets a payment to confirm on YooKassa's page."""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from billing import clock, locks
from billing.errors import (
    AlreadySubscribed,
    EmailRequired,
    GatewayError,
    PaymentInProgress,
    PlanNotFound,
)
from billing.events import BillingEventType, PaymentCreated, SubscriptionCreated
from billing.models import (
    OPEN_PAYMENT_STATUSES,
    OPEN_SUBSCRIPTION_STATUSES,
    ClientRequest,
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
from billing.validation import return_url_check
from plans.models import Plan

logger = logging.getLogger(__name__)

# A pending payment younger than this was just created (or handed out) with a confirmation URL
# YooKassa gave moments ago: it goes back as it is. Anything older is fetched from YooKassa
# first, so that a viewer never gets the page of a payment that was declined or has lapsed.
JUST_CREATED = timedelta(seconds=5)


@dataclass(frozen=True)
class CheckoutResult:
    subscription: Subscription
    payment: Payment


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

    A repeat with the same idempotency key returns the first result (as it stands now); a viewer
    whose payment for the plan is still pending gets that payment back, and one whose payment
    lapsed gets a new one; nothing charges the viewer twice.

    When YooKassa could not be asked or did not answer, the GatewayError carries the payment and
    its subscription (`error.result`): the payment stays CREATING, and a retry with the same key
    (or the reconciliation) finishes it under the same Idempotence-Key.
    """
    client_request_check_key(idempotency_key)
    keyed = KeyedRequest(
        viewer_id=viewer_id,
        idempotency_key=idempotency_key,
        operation="subscribe",
        fingerprint=client_request_fingerprint("subscribe", plan_id, return_url, save_payment_method),
    )
    # Before the input is judged again: a repeat gets its first result even if the plan has
    # left the catalog since.
    earlier = keyed.earlier()
    if earlier is not None:
        payment = _recheck_if_due(_payment_of(earlier))
    else:
        payment = _open_checkout(
            _new_checkout(
                viewer_id=viewer_id,
                viewer_email=viewer_email,
                plan_id=plan_id,
                return_url=return_url,
                save_payment_method=save_payment_method,
            ),
            keyed,
        )
    if payment.status == PaymentStatus.CREATING:
        try:
            payment = payment_create_at_provider(payment=payment)
        except GatewayError as error:
            payment = error.result.get("payment", payment)
            payment.subscription.refresh_from_db()
            error.with_result(subscription=payment.subscription)
            raise
    payment.subscription.refresh_from_db()
    return CheckoutResult(subscription=payment.subscription, payment=payment)


@dataclass(frozen=True)
class _Checkout:
    viewer_id: uuid.UUID
    viewer_email: str
    plan: Plan
    return_url: str
    save_payment_method: bool


@dataclass(frozen=True)
class _Opened:
    payment: Payment
    # False: another request's pending payment, not yet checked with YooKassa, and not (yet)
    # this request's result: the key is bound to it only once it is known to be alive.
    taken: bool


def _new_checkout(
    *, viewer_id: uuid.UUID, viewer_email: str | None, plan_id: int, return_url: str, save_payment_method: bool
) -> _Checkout:
    plan = Plan.objects.active().filter(pk=plan_id).first()
    if plan is None:
        raise PlanNotFound("There is no such plan on sale.", field="planId")
    return_url_check(return_url=return_url)
    if settings.YOOKASSA_RECEIPTS and not viewer_email:
        raise EmailRequired("A receipt must be emailed, and the viewer has no email address.")
    return _Checkout(
        viewer_id=viewer_id,
        viewer_email=viewer_email or "",
        plan=plan,
        return_url=return_url,
        save_payment_method=save_payment_method,
    )


def _open_checkout(request: _Checkout, keyed: KeyedRequest) -> Payment:
    """The payment this new request hands back: a pending one of the viewer's, when YooKassa
    confirms it is still alive, or else a new one."""
    opened = _open_or_find(request, keyed, take_existing=False)
    if opened.taken:
        return opened.payment
    # Asked outside any transaction: no lock is held while YooKassa answers. If the payment
    # lapsed, its subscription has failed and the next round opens a new attempt.
    _recheck(opened.payment)
    return _open_or_find(request, keyed, take_existing=True).payment


def _open_or_find(request: _Checkout, keyed: KeyedRequest, *, take_existing: bool) -> _Opened:
    """Committed before anything is asked of YooKassa: a new payment, or the viewer's open one."""

    def open_or_repeat() -> _Opened:
        earlier = keyed.earlier()
        if earlier is not None:
            # Another request under this key committed first: its result is this one's.
            return _Opened(_payment_of(earlier), taken=True)
        payment, created = _checkout_payment(request)
        if not created and not take_existing and _may_have_lapsed(payment):
            return _Opened(payment, taken=False)
        keyed.remember(subscription=payment.subscription, payment=payment)
        return _Opened(payment, taken=True)

    # A conflict means another request of this viewer committed first (the same key, or a second
    # live subscription): the next round reads what it made.
    return atomic_retrying_conflicts(open_or_repeat)


def _payment_of(earlier: ClientRequest) -> Payment:
    return Payment.objects.select_related("subscription__plan").get(pk=earlier.payment_id)


def _checkout_payment(request: _Checkout) -> tuple[Payment, bool]:
    """The viewer's open payment for the plan, or a new one (True when it is new)."""
    viewer_id, viewer_email, plan = request.viewer_id, request.viewer_email, request.plan
    live = locks.subscriptions_for_update().filter(viewer_id=viewer_id, status__in=OPEN_SUBSCRIPTION_STATUSES).first()
    if live is None:
        subscription = Subscription.objects.create(
            viewer_id=viewer_id, viewer_email=viewer_email, plan=plan, status=SubscriptionStatus.PENDING
        )
        event_record(subscription, BillingEventType.SUBSCRIPTION_CREATED, SubscriptionCreated(plan=plan.code))
        return _new_payment(subscription, request), True
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
        return open_payment, False
    return _new_payment(live, request), True


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
        subscription,
        BillingEventType.PAYMENT_CREATED,
        PaymentCreated(amount=payment.amount, currency=payment.currency),
        payment=payment,
    )
    return payment


def _may_have_lapsed(payment: Payment) -> bool:
    """A pending payment whose page may be dead by now: declined, expired, canceled at YooKassa.
    Real time, as the rows' `created_at` keeps it, not billing's clock."""
    return (
        payment.status == PaymentStatus.PENDING
        and payment.provider_payment_id is not None
        and payment.created_at < clock.real_now() - JUST_CREATED
    )


def _recheck_if_due(payment: Payment) -> Payment:
    return _recheck(payment) if _may_have_lapsed(payment) else payment


def _recheck(payment: Payment) -> Payment:
    """What YooKassa says of the payment, applied as a webhook's news would be; when YooKassa
    cannot be asked, the payment as we know it."""
    try:
        return payment_refresh(provider_payment_id=payment.provider_payment_id)
    except GatewayError as error:
        logger.warning("Could not recheck payment %s: %s", payment.id, error)
        return payment
