"""Renewal with the saved card, dunning, expiry and notices, against the sandbox, on billing's clock."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import clock, services
from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundInitiator,
    RefundStatus,
    SubscriptionStatus,
)
from billing.services import lifecycle, reconciliation, renewals
from graphql_api.auth import Viewer
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


@pytest.fixture
def active(viewer, plan):
    """Basic (299.00 RUB a month), paid with a saved card."""
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription


def at(moment):
    return clock.travel_to(moment)


def janitor_in(minutes: float = 6):
    """The janitor (it keeps real time) as if `minutes` had passed, with after-commit work done."""
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


def events(subscription, prefix="subscription."):
    return list(
        BillingEvent.objects.filter(subscription=subscription, type__startswith=prefix).values_list("type", flat=True)
    )


def test_nothing_is_charged_before_the_lead_time(active, sandbox):
    with at(active.current_period_end - timedelta(hours=25)):
        report = renewals.subscription_renew_due()

    assert report.charged == 0
    assert sandbox.store.count_payments() == 1


def test_renewal_charges_the_saved_card_and_extends_from_the_old_end(active, plan, sandbox):
    old_end = active.current_period_end

    with at(old_end - timedelta(hours=2)):
        report = renewals.subscription_renew_due()

    active.refresh_from_db()
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert report.as_dict() == {"charged": 1, "succeeded": 1, "declined": 0, "unknown": 0, "failed": []}
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert renewal.period_start == old_end
    assert renewal.payment_method == active.payment_method
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.current_period_start == old_end
    assert active.current_period_end == plan.period.end_after(old_end)
    charge = sandbox.emulator.get_payment(renewal.provider_payment_id)
    assert charge["payment_method"]["id"] == active.payment_method.provider_method_id
    assert "confirmation" not in charge
    assert "subscription.renewed" in events(active)


def test_running_the_batch_again_charges_nothing_more(active, sandbox):
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
        again = renewals.subscription_renew_due()

    assert again.charged == 0
    assert sandbox.store.count_payments() == 2


def test_renewal_uses_todays_price(active, plan, sandbox):
    plan.price = "349.00"
    plan.save()

    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    assert Payment.objects.get(kind=PaymentKind.RENEWAL).amount == Decimal("349.00")


def test_a_decline_makes_it_past_due_then_retries_on_schedule_then_expires(active, sandbox):
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    first_try = active.current_period_end - timedelta(hours=2)

    with at(first_try):
        renewals.subscription_renew_due()
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.PAST_DUE
    assert active.renewal_failures == 1
    assert active.next_renewal_attempt_at == active.past_due_since + timedelta(days=1)

    for days, failures in ((1, 2), (3, 3)):
        with at(active.past_due_since + timedelta(days=days) - timedelta(minutes=1)):
            assert renewals.subscription_retry_past_due().charged == 0
        with at(active.past_due_since + timedelta(days=days, minutes=1)):
            assert renewals.subscription_retry_past_due().declined == 1
        active.refresh_from_db()
        assert active.status == SubscriptionStatus.PAST_DUE
        assert active.renewal_failures == failures

    with at(active.past_due_since + timedelta(days=5, minutes=1)):
        renewals.subscription_retry_past_due()

    active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED
    assert Payment.objects.filter(kind=PaymentKind.RENEWAL, status=PaymentStatus.CANCELED).count() == 4
    assert sandbox.store.count_payments() == 5
    assert events(active) == [
        "subscription.created",
        "subscription.activated",
        "subscription.renewal_failed",
        "subscription.past_due",
        "subscription.renewal_failed",
        "subscription.past_due",
        "subscription.renewal_failed",
        "subscription.past_due",
        "subscription.renewal_failed",
        "subscription.expired",
    ]


def test_a_retry_that_succeeds_makes_it_active_with_no_lost_days(active, plan, sandbox):
    old_end = active.current_period_end
    method_id = active.payment_method.provider_method_id
    sandbox.emulator.set_payment_method_decline(method_id, "insufficient_funds")
    with at(old_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    active.refresh_from_db()
    sandbox.emulator.set_payment_method_decline(method_id, None)

    with at(active.next_renewal_attempt_at + timedelta(minutes=1)):
        report = renewals.subscription_retry_past_due()

    active.refresh_from_db()
    assert report.succeeded == 1
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.renewal_failures == 0
    assert active.past_due_since is None
    assert active.current_period_start == old_end
    assert active.current_period_end == plan.period.end_after(old_end)


def test_a_revoked_card_stops_retries_at_once_and_the_paid_period_runs_to_its_end(active, sandbox):
    sandbox.emulator.revoke_payment_method(active.payment_method.provider_method_id)
    end = active.current_period_end

    with at(end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.auto_renew is False
    assert active.next_renewal_attempt_at is None
    assert active.payment_method.is_active is False
    with at(end - timedelta(minutes=1)):
        assert lifecycle.subscription_expire_due()["permission_revoked"] == 0
        assert renewals.subscription_renew_due().charged == 0
        assert renewals.subscription_retry_past_due().charged == 0
    with at(end + timedelta(seconds=1)):
        ended = lifecycle.subscription_expire_due()
    active.refresh_from_db()
    assert ended["permission_revoked"] == 1
    assert active.status == SubscriptionStatus.EXPIRED
    assert BillingEvent.objects.get(type="subscription.expired").payload["reason"] == "permission_revoked"
    with at(end + timedelta(days=10)):
        assert renewals.subscription_retry_past_due().charged == 0
    assert sandbox.store.count_payments() == 2
    assert events(active)[-3:] == [
        "subscription.renewal_failed",
        "subscription.auto_renew_changed",
        "subscription.expired",
    ]


def test_a_card_revoked_during_dunning_after_the_period_is_over_ends_the_subscription_at_once(active, sandbox):
    method_id = active.payment_method.provider_method_id
    sandbox.emulator.set_payment_method_decline(method_id, "insufficient_funds")
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    active.refresh_from_db()
    sandbox.emulator.set_payment_method_decline(method_id, None)
    sandbox.emulator.revoke_payment_method(method_id)

    with at(active.next_renewal_attempt_at + timedelta(minutes=1)):
        assert renewals.subscription_retry_past_due().declined == 1

    active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED
    assert active.auto_renew is False
    assert active.next_renewal_attempt_at is None
    assert active.payment_method.is_active is False
    assert BillingEvent.objects.filter(type="subscription.expired").get().payload["reason"] == "permission_revoked"


def test_past_due_keeps_access_through_the_grace_period_then_expires(active, settings):
    settings.DUNNING_RETRY_DAYS = [30]
    active.status, active.past_due_since, active.renewal_failures = SubscriptionStatus.PAST_DUE, clock.now(), 1
    active.save()

    with at(active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS) - timedelta(minutes=1)):
        kept = lifecycle.subscription_expire_due()
    with at(active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS, minutes=1)):
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert kept["grace_period_over"] == 0
    assert ended["grace_period_over"] == 1
    assert active.status == SubscriptionStatus.EXPIRED


def test_a_cancellation_at_period_end_ends_at_the_period_end(viewer, active, sandbox):
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.AT_PERIOD_END, idempotency_key=None
    )

    with at(active.current_period_end - timedelta(hours=2)):
        assert renewals.subscription_renew_due().charged == 0
        assert lifecycle.subscription_expire_due()["canceled_at_period_end"] == 0
    with at(active.current_period_end + timedelta(seconds=1)):
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert ended["canceled_at_period_end"] == 1
    assert active.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_payments() == 1


def test_without_auto_renewal_the_subscription_expires_with_its_period(viewer, active, sandbox):
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)

    with at(active.current_period_end + timedelta(seconds=1)):
        assert renewals.subscription_renew_due().charged == 0
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert ended["not_renewed"] == 1
    assert active.status == SubscriptionStatus.EXPIRED


def test_removing_the_card_switches_auto_renewal_off(viewer, active):
    services.payment_method_remove(viewer_id=viewer.id, payment_method_id=active.payment_method_id)

    active.refresh_from_db()
    assert active.auto_renew is False
    with at(active.current_period_end - timedelta(hours=2)):
        assert renewals.subscription_renew_due().charged == 0


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


def test_upcoming_renewals_are_announced_once_per_period(active):
    with at(active.current_period_end - timedelta(days=4)):
        assert lifecycle.subscription_record_renewal_notices() == 0
    with at(active.current_period_end - timedelta(days=2)):
        assert lifecycle.subscription_record_renewal_notices() == 1
        assert lifecycle.subscription_record_renewal_notices() == 0

    notice = BillingEvent.objects.get(type="subscription.renewal_upcoming")
    assert notice.payload == {
        "charge_on": active.current_period_end.isoformat(),
        "amount": "299.00",
        "currency": "RUB",
    }


# --- what the viewer does while a renewal is under way wins ---------------------------------------


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


# --- one run, one charge per subscription ------------------------------------------------------------


def test_a_run_far_ahead_of_the_period_end_charges_a_subscription_once(active, sandbox):
    old_end = active.current_period_end

    with at(old_end + timedelta(days=120)):  # four periods missed
        report = renewals.subscription_renew_due()

    active.refresh_from_db()
    assert report.as_dict() == {"charged": 1, "succeeded": 1, "declined": 0, "unknown": 0, "failed": []}
    assert Payment.objects.filter(kind=PaymentKind.RENEWAL).count() == 1
    assert active.current_period_start == old_end
    assert sandbox.store.count_payments() == 2


def test_a_dunning_run_far_ahead_makes_one_attempt_per_subscription(active, sandbox):
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    active.refresh_from_db()

    with at(active.past_due_since + timedelta(days=10)):  # every retry day has passed
        report = renewals.subscription_retry_past_due()

    active.refresh_from_db()
    assert report.declined == 1
    assert active.status == SubscriptionStatus.PAST_DUE
    assert active.renewal_failures == 2


# --- one bad row, one slow answer ------------------------------------------------------------------


def second_active_subscription(plan):
    viewer = Viewer(id=uuid.uuid4(), email="second@example.com")
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()
    return subscription


def test_a_subscription_whose_renewal_cannot_be_opened_is_reported_and_the_rest_are_charged(active, plan, sandbox):
    second = second_active_subscription(plan)
    # Bad data: an open first payment on an active subscription. The renewal's insert breaks the
    # database's one-open-payment rule; the page it is in must not be lost with it.
    Payment.objects.create(
        viewer_id=active.viewer_id,
        subscription=active,
        kind=PaymentKind.INITIAL,
        amount="299.00",
        currency="RUB",
        description="stray",
        idempotence_key=f"stray-{uuid.uuid4()}",
    )
    assert active.current_period_end < second.current_period_end  # first in the page

    with at(second.current_period_end - timedelta(hours=2)):
        report = renewals.subscription_renew_due()
        again = renewals.subscription_renew_due()

    second.refresh_from_db()
    assert report.as_dict() == {"charged": 1, "succeeded": 1, "declined": 0, "unknown": 0, "failed": [str(active.pk)]}
    assert (
        second.current_period_start == Payment.objects.get(subscription=second, kind=PaymentKind.RENEWAL).period_start
    )
    assert not Payment.objects.filter(subscription=active, kind=PaymentKind.RENEWAL).exists()
    assert again.as_dict() == {"charged": 0, "succeeded": 0, "declined": 0, "unknown": 0, "failed": [str(active.pk)]}


def test_a_run_out_of_time_leaves_the_rest_of_its_page_to_the_janitor(active, plan, sandbox):
    second = second_active_subscription(plan)
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=0.5))

    with at(second.current_period_end - timedelta(hours=2)):
        report = renewals.subscription_renew_due(time_budget=0.2)

    assert report.as_dict() == {"charged": 2, "succeeded": 1, "declined": 0, "unknown": 1, "failed": []}
    assert sandbox.store.count_payments() == 3  # two first payments, one renewal
    left = Payment.objects.get(subscription=second, kind=PaymentKind.RENEWAL)
    assert left.status == PaymentStatus.CREATING
    janitor_in()
    left.refresh_from_db()
    assert left.status == PaymentStatus.SUCCEEDED
    assert sandbox.store.count_payments() == 4


# --- dunning against the grace period --------------------------------------------------------------


def test_a_late_first_attempt_still_gets_every_retry_before_the_grace_period_ends_it(active, sandbox, settings):
    assert (settings.DUNNING_RETRY_DAYS, settings.DUNNING_GRACE_DAYS) == ([1, 3, 5], 7)
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    end = active.current_period_end
    with at(end + timedelta(days=3)):  # the first attempt three days late: the jobs were down
        renewals.subscription_renew_due()
    active.refresh_from_db()
    for days in (1, 3):
        with at(active.past_due_since + timedelta(days=days, minutes=1)):
            assert renewals.subscription_retry_past_due().declined == 1

    with at(end + timedelta(days=settings.DUNNING_GRACE_DAYS, minutes=1)):  # the day-5 retry is still to come
        kept = lifecycle.subscription_expire_due()
    active.refresh_from_db()
    assert kept["grace_period_over"] == 0
    assert active.status == SubscriptionStatus.PAST_DUE
    with at(active.past_due_since + timedelta(days=5, minutes=1)):
        assert renewals.subscription_retry_past_due().declined == 1

    active.refresh_from_db()
    assert active.status == SubscriptionStatus.EXPIRED
    assert BillingEvent.objects.get(type="subscription.expired").payload == {"reason": "renewal_failed", "attempts": 4}
    assert Payment.objects.filter(kind=PaymentKind.RENEWAL, status=PaymentStatus.CANCELED).count() == 4


def test_a_past_due_subscription_nothing_will_retry_ends_with_its_grace_period(viewer, active, sandbox, settings):
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    services.subscription_set_auto_renew(viewer_id=viewer.id, subscription_id=active.pk, enabled=False)

    with at(active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS, minutes=1)):
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert ended["grace_period_over"] == 1
    assert active.status == SubscriptionStatus.EXPIRED


# --- the amount the viewer was told -----------------------------------------------------------------


def notices(subscription) -> list[str]:
    return [
        event.payload["amount"]
        for event in BillingEvent.objects.filter(subscription=subscription, type="subscription.renewal_upcoming")
    ]


def test_a_price_change_after_the_notice_is_announced_before_the_charge(active, plan, sandbox):
    with at(active.current_period_end - timedelta(days=2)):
        lifecycle.subscription_record_renewal_notices()
    plan.price = "349.00"
    plan.save()

    with at(active.current_period_end - timedelta(days=1, hours=12)):
        assert lifecycle.subscription_record_renewal_notices() == 1
        assert lifecycle.subscription_record_renewal_notices() == 0
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    assert notices(active) == ["299.00", "349.00"]
    assert Payment.objects.get(kind=PaymentKind.RENEWAL).amount == Decimal("349.00")
    assert BillingEvent.objects.filter(type="subscription.renewal_upcoming").last().payload == {
        "charge_on": active.current_period_end.isoformat(),
        "amount": "349.00",
        "currency": "RUB",
    }


def test_a_price_change_the_notice_job_has_not_seen_yet_is_announced_with_the_charge(active, plan, sandbox):
    with at(active.current_period_end - timedelta(days=2)):
        lifecycle.subscription_record_renewal_notices()
    plan.price = "349.00"
    plan.save()

    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
        assert lifecycle.subscription_record_renewal_notices() == 0

    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    told = BillingEvent.objects.filter(type="subscription.renewal_upcoming").last()
    opened = BillingEvent.objects.get(type="payment.created", payment=renewal)
    assert notices(active) == ["299.00", "349.00"]
    assert renewal.amount == Decimal("349.00")
    assert told.id < opened.id


def test_a_price_change_after_the_charge_is_opened_is_not_announced(active, plan, sandbox):
    with at(active.current_period_end - timedelta(days=2)):
        lifecycle.subscription_record_renewal_notices()
    renewal = charge_unanswered(active, sandbox)  # 299.00, whatever the price becomes
    plan.price = "349.00"
    plan.save()

    with at(active.current_period_end - timedelta(hours=1)):
        assert lifecycle.subscription_record_renewal_notices() == 0

    assert notices(active) == ["299.00"]
    assert renewal.amount == Decimal("299.00")


def test_no_renewal_is_announced_while_a_cancellation_refund_is_under_way(viewer, active, sandbox):
    cancel_with_a_refund_left_pending(viewer, active, sandbox)

    with at(active.current_period_end - timedelta(days=2)):
        assert lifecycle.subscription_record_renewal_notices() == 0
