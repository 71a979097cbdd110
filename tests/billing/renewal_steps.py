"""Steps the renewal tests share: billing's clock, the janitor, a charge whose answer is lost."""

import uuid
from datetime import timedelta

from django.utils import timezone

from billing import clock, services
from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from billing.services import reconciliation, renewals
from graphql_api.auth import Viewer
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import pay_on_page, start_checkout


def at(moment):
    return clock.moved_to(moment)


def janitor_in(minutes: float = 6):
    """The janitor (it keeps real time) as if `minutes` had passed."""
    return reconciliation.billing_reconcile(now=timezone.now() + timedelta(minutes=minutes))


def charge_unanswered(subscription, sandbox, *, made: bool = True) -> Payment:
    """Run the renewal, but lose YooKassa's answer (a 500): the charge stays open for the janitor.
    `made`: YooKassa charged the card before failing (else the janitor's re-send makes it)."""
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=made))
    with at(subscription.current_period_end - timedelta(hours=2)):
        assert renewals.subscription_renew_due().unknown == 1
    renewal = Payment.objects.get(subscription=subscription, kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.CREATING
    return renewal


def events(subscription, prefix="subscription."):
    return list(
        BillingEvent.objects.filter(subscription=subscription, type__startswith=prefix).values_list("type", flat=True)
    )


def cancel_with_a_refund_left_pending(viewer, subscription, sandbox) -> Refund:
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    refund = services.subscription_cancel(
        viewer_id=viewer.id,
        subscription_id=subscription.pk,
        mode=services.CancelMode.NOW_WITH_REFUND,
        idempotency_key=None,
    ).refund
    sandbox.emulator.refund_outcome = RefundOutcome.SUCCEEDED
    assert refund.status == RefundStatus.PENDING
    return refund


def second_active_subscription(plan):
    viewer = Viewer(id=uuid.uuid4(), email="second@example.com")
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription
