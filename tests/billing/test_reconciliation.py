"""The janitor brings every open payment and refund to its end, with one charge at most."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import clock, services
from billing.errors import ProviderOutcomeUnknown
from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
    SubscriptionStatus,
)
from billing.services import reconciliation, renewals
from graphql_api.auth import Viewer
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def reconcile_in(minutes: float):
    """Run the janitor as if `minutes` of real time had passed (it keeps real time, not billing's clock)."""
    return reconciliation.billing_reconcile(now=timezone.now() + timedelta(minutes=minutes))


def test_young_open_payments_are_left_alone(viewer, plan):
    start_checkout(viewer, plan)

    assert reconcile_in(4).looked_at == 0


def test_a_lost_success_notification_is_made_up_for(viewer, plan, sandbox):
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")  # its notification never arrives

    report = reconcile_in(6)

    payment.refresh_from_db()
    payment.subscription.refresh_from_db()
    assert report.as_dict() == {"looked_at": 1, "settled": 1, "unavailable": 0, "failed": []}
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.subscription.status == SubscriptionStatus.ACTIVE


@pytest.mark.parametrize("applied", [True, False], ids=["yookassa-created-it", "yookassa-did-not"])
def test_a_payment_yookassa_answered_500_for_is_reconciled_to_its_real_outcome(viewer, plan, sandbox, applied):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=applied))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        start_checkout(viewer, plan)
    payment = raised.value.result["payment"]
    assert payment.status == PaymentStatus.CREATING

    reconcile_in(6)

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING
    assert payment.confirmation_url
    assert sandbox.store.count_payments() == 1


def test_an_unsent_payment_whose_key_expired_is_found_by_its_metadata(viewer, plan, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="payments.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        start_checkout(viewer, plan)
    payment = raised.value.result["payment"]
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=2))
    pay_on_page(sandbox.store.recent_payments(1)[0]["confirmation"]["confirmation_url"], "5555555555554444")

    reconcile_in(6)

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert sandbox.store.count_payments() == 1


def test_an_unsent_payment_whose_key_expired_and_that_yookassa_never_saw_is_closed(viewer, plan, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=False))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        start_checkout(viewer, plan)
    payment = raised.value.result["payment"]
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - timedelta(days=2))

    reconcile_in(6)

    payment.refresh_from_db()
    payment.subscription.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert payment.cancellation_reason == "never_reached_provider"
    assert payment.subscription.status == SubscriptionStatus.FAILED
    assert sandbox.store.count_payments() == 0


def test_an_unavailable_yookassa_backs_off_five_minutes_an_hour_then_a_day(viewer, plan, sandbox):
    payment = start_checkout(viewer, plan).payment
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.get", applied=False, times=None))
    moment = timezone.now() + timedelta(minutes=6)
    waits = []

    for _ in range(4):
        assert reconciliation.billing_reconcile(now=moment).unavailable == 1
        payment.refresh_from_db()
        waits.append(payment.next_check_at - moment)
        moment = payment.next_check_at + timedelta(seconds=1)

    assert [round(wait.total_seconds()) for wait in waits] == [300, 3600, 86400, 86400]
    assert payment.check_attempts == 4
    assert payment.status == PaymentStatus.PENDING


def test_a_row_that_breaks_the_janitor_is_reported_and_the_rest_go_on(viewer, plan, sandbox, monkeypatch, plans):

    broken = start_checkout(viewer, plan).payment
    fine = start_checkout(Viewer(id=uuid.uuid4(), email="b@example.com"), plan).payment
    pay_on_page(fine.confirmation_url, "5555555555554444")
    real_refresh = reconciliation.payment_refresh

    def refresh(*, provider_payment_id):
        if provider_payment_id == broken.provider_payment_id:
            raise RuntimeError("poison")
        return real_refresh(provider_payment_id=provider_payment_id)

    monkeypatch.setattr(reconciliation, "payment_refresh", refresh)

    report = reconcile_in(6)

    fine.refresh_from_db()
    assert report.failed_ids == [str(broken.pk)]
    assert fine.status == PaymentStatus.SUCCEEDED
    assert BillingEvent.objects.get(type="reconciliation.failed").payment_id == broken.pk
    assert reconcile_in(7).looked_at == 0  # the broken row waits out its back-off


def test_a_renewal_whose_worker_died_after_the_charge_is_found_not_charged_again(active, sandbox, settings):
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0))
    charged_at = active.current_period_end - timedelta(hours=2)
    with clock.moved_to(charged_at):
        renewals.subscription_renew_due()
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.CREATING

    with clock.moved_to(charged_at + timedelta(minutes=6)):
        reconciliation.billing_reconcile(now=timezone.now() + timedelta(minutes=6))

    renewal.refresh_from_db()
    active.refresh_from_db()
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert active.current_period_start == renewal.period_start
    assert sandbox.store.count_payments() == 2


def test_a_pending_refund_is_followed_to_success(viewer, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    refund = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.NOW_WITH_REFUND, idempotency_key=None
    ).refund
    sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")

    reconcile_in(6)

    refund.refresh_from_db()
    active.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert active.status == SubscriptionStatus.CANCELED


def test_a_refund_yookassa_cancels_later_is_closed_and_frees_the_payment(viewer, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    refund = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.NOW_WITH_REFUND, idempotency_key=None
    ).refund
    sandbox.emulator.settle_refund(refund.provider_refund_id, "canceled")

    reconcile_in(6)

    refund.refresh_from_db()
    active.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED
    assert active.status == SubscriptionStatus.ACTIVE
    assert not Refund.objects.filter(status__in=[RefundStatus.CREATING, RefundStatus.PENDING]).exists()


def test_a_refund_whose_answer_was_lost_is_sent_again_with_its_key(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=False))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        services.subscription_cancel(
            viewer_id=viewer.id,
            subscription_id=active.pk,
            mode=services.CancelMode.NOW_WITH_REFUND,
            idempotency_key=None,
        )
    refund = raised.value.result["refund"]
    assert refund.status == RefundStatus.CREATING

    reconcile_in(6)

    refund.refresh_from_db()
    active.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert active.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_renewal_an_as_of_run_left_open_is_taken_up_by_the_real_time_janitor(active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=True))
    with clock.moved_to(active.current_period_end - timedelta(hours=2)):  # a month from now
        renewals.subscription_renew_due()
        assert reconciliation.billing_reconcile().looked_at == 0  # due five real minutes on
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.CREATING

    report = reconcile_in(6)

    renewal.refresh_from_db()
    active.refresh_from_db()
    assert report.as_dict() == {"looked_at": 1, "settled": 1, "unavailable": 0, "failed": []}
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert active.current_period_start == renewal.period_start
    assert sandbox.store.count_payments() == 2


def test_the_janitor_backs_off_on_real_time_whatever_billing_clock_says(viewer, plan, sandbox):
    payment = start_checkout(viewer, plan).payment
    Payment.objects.filter(pk=payment.pk).update(next_check_at=timezone.now())
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.get", applied=False))

    with clock.moved_to(timezone.now() + timedelta(days=30)):  # run_billing_jobs --as-of
        before = timezone.now()
        assert reconciliation.billing_reconcile().unavailable == 1
        after = timezone.now()

    payment.refresh_from_db()
    assert before + reconciliation.BACKOFF[0] <= payment.next_check_at <= after + reconciliation.BACKOFF[0]


@pytest.mark.parametrize("applied", [True, False], ids=["yookassa-charged-the-card", "yookassa-did-not"])
def test_a_renewal_yookassa_answered_500_for_is_reconciled_to_one_charge(active, plan, sandbox, applied):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=applied))
    old_end = active.current_period_end
    with clock.moved_to(old_end - timedelta(hours=2)):
        assert renewals.subscription_renew_due().unknown == 1
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.CREATING
    assert sandbox.store.count_payments() == (2 if applied else 1)

    report = reconcile_in(6)
    again = reconcile_in(6 + 24 * 60)

    renewal.refresh_from_db()
    active.refresh_from_db()
    assert report.as_dict() == {"looked_at": 1, "settled": 1, "unavailable": 0, "failed": []}
    assert again.looked_at == 0
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert active.current_period_start == old_end
    assert active.current_period_end == plan.period.end_after(old_end)
    assert sandbox.store.count_payments() == 2
    [charge] = [charge for charge in sandbox.store.recent_payments(10) if charge["id"] == renewal.provider_payment_id]
    assert charge["metadata"]["payment_id"] == str(renewal.pk)
