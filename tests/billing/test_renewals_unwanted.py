"""What the viewer does while a renewal is under way wins: no charge while a cancellation refund is
open, and a renewal that succeeds when no longer wanted is given back in full."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import services
from billing.models import (
    Payment,
    PaymentKind,
    PaymentStatus,
    RefundInitiator,
    RefundStatus,
    SubscriptionStatus,
)
from billing.services import lifecycle, reconciliation, renewals
from sandbox.faults import ApiEffect, ApiFault
from tests.billing.renewal_steps import (
    at,
    cancel_with_a_refund_left_pending,
    charge_unanswered,
    events,
    janitor_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def assert_given_back_in_full(renewal: Payment, subscription, *, because: str) -> None:
    """The renewal was charged, all of it went back, and the subscription kept its old period."""
    renewal.refresh_from_db()
    subscription.refresh_from_db()
    assert renewal.status == PaymentStatus.SUCCEEDED
    [refund] = renewal.refunds.all()
    assert refund.initiator == RefundInitiator.SYSTEM
    assert refund.reason == f"Paid after the subscription no longer needed it ({because})."
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.amount == renewal.amount
    assert renewal.refunded_amount == renewal.amount
    assert subscription.current_period_end == renewal.period_start  # the period it paid for never began
    assert "subscription.renewed" not in events(subscription)


def test_money_for_a_period_nobody_needs_goes_back(
    viewer, active, sandbox, settings, django_capture_on_commit_callbacks
):
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0))
    charged_at = active.current_period_end - timedelta(hours=2)
    with at(charged_at):
        renewals.subscription_renew_due()
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.CREATING
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )

    with at(charged_at + timedelta(minutes=6)), django_capture_on_commit_callbacks(execute=True):
        reconciliation.billing_reconcile(now=timezone.now() + timedelta(minutes=6))

    renewal.refresh_from_db()
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert renewal.refunds.get().status == RefundStatus.SUCCEEDED
    assert renewal.refunded_amount == renewal.amount


def test_a_subscription_being_canceled_with_a_refund_is_not_renewed(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    refund = cancel_with_a_refund_left_pending(viewer, active, sandbox)

    with at(active.current_period_end - timedelta(hours=2)):
        report = renewals.subscription_renew_due()
    sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()

    active.refresh_from_db()
    assert report.charged == 0
    assert active.status == SubscriptionStatus.CANCELED
    assert not Payment.objects.filter(kind=PaymentKind.RENEWAL).exists()
    assert sandbox.store.count_payments() == 1


def test_a_renewal_that_succeeds_while_a_cancellation_refund_is_under_way_is_given_back(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    renewal = charge_unanswered(active, sandbox)
    refund = cancel_with_a_refund_left_pending(viewer, active, sandbox)

    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()

    assert_given_back_in_full(renewal, active, because="canceled with a refund")
    sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")
    janitor_in(6 + 60)
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.CANCELED


def test_when_the_cancellation_refund_fails_a_subscription_whose_renewal_was_given_back_ends_with_its_period(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    renewal = charge_unanswered(active, sandbox)
    refund = cancel_with_a_refund_left_pending(viewer, active, sandbox)
    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()
    sandbox.emulator.settle_refund(refund.provider_refund_id, "canceled")
    janitor_in(6 + 60)
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE

    with at(active.current_period_end + timedelta(seconds=1)):
        charged = renewals.subscription_renew_due()
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert_given_back_in_full(renewal, active, because="canceled with a refund")
    assert charged.charged == 0
    assert ended["not_renewed"] == 1
    assert active.status == SubscriptionStatus.EXPIRED


def test_a_renewal_that_succeeds_after_auto_renewal_was_switched_off_is_given_back(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    renewal = charge_unanswered(active, sandbox)
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)

    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()

    assert_given_back_in_full(renewal, active, because="auto-renewal off")
    with at(active.current_period_end + timedelta(seconds=1)):
        assert lifecycle.subscription_expire_due()["not_renewed"] == 1
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED


def test_a_renewal_re_sent_by_the_janitor_after_the_card_was_removed_is_given_back(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    renewal = charge_unanswered(active, sandbox, made=False)
    services.payment_method_remove(viewer_id=viewer.id, payment_method_id=active.payment_method_id)

    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()  # the re-send under the same key is how we learn the first never happened

    assert_given_back_in_full(renewal, active, because="auto-renewal off")
    assert sandbox.store.count_payments() == 2


def test_a_renewal_that_succeeds_after_a_cancellation_at_period_end_is_given_back_and_it_ends_on_time(
    viewer, active, sandbox, django_capture_on_commit_callbacks
):
    renewal = charge_unanswered(active, sandbox)
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.AT_PERIOD_END, idempotency_key=None
    )
    period_over = active.current_period_end + timedelta(seconds=1)

    with at(period_over):
        waiting = lifecycle.subscription_expire_due()  # the charge is still in flight
    active.refresh_from_db()
    assert waiting["canceled_at_period_end"] == 0
    assert active.status == SubscriptionStatus.ACTIVE
    with django_capture_on_commit_callbacks(execute=True):
        janitor_in()
    with at(period_over):
        ended = lifecycle.subscription_expire_due()

    assert_given_back_in_full(renewal, active, because="auto-renewal off")
    assert ended["canceled_at_period_end"] == 1
    assert active.status == SubscriptionStatus.CANCELED
