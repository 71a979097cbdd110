"""Renewal with the saved card, dunning and expiry, against the sandbox, on billing's clock."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from billing import clock, services
from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
    PaymentStatus,
    SubscriptionStatus,
)
from billing.services import lifecycle, renewals
from sandbox.faults import ApiEffect, ApiFault
from tests.billing.renewal_steps import (
    at,
    events,
    janitor_in,
    second_active_subscription,
)
from tests.helpers import SeenAtYooKassa

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


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


@pytest.mark.django_db(transaction=True)
def test_the_renewal_row_is_committed_before_yookassa_is_asked(active, seen_at_yookassa):
    with at(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert [seen for seen in seen_at_yookassa if seen.idempotence_key == renewal.idempotence_key] == [
        SeenAtYooKassa("payments.create", renewal.idempotence_key, PaymentStatus.CREATING)
    ]


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
    active.status, active.past_due_since, active.renewal_failures = SubscriptionStatus.PAST_DUE, clock.domain_now(), 1
    active.save()

    with at(active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS) - timedelta(minutes=1)):
        kept = lifecycle.subscription_expire_due()
    with at(active.current_period_end + timedelta(days=settings.DUNNING_GRACE_DAYS, minutes=1)):
        ended = lifecycle.subscription_expire_due()

    active.refresh_from_db()
    assert kept["grace_period_over"] == 0
    assert ended["grace_period_over"] == 1
    assert active.status == SubscriptionStatus.EXPIRED


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


def test_a_run_slowed_past_twice_its_time_budget_leaves_the_rest_of_its_page_to_the_janitor(active, plan, sandbox):
    second = second_active_subscription(plan)
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=0.5))  # past 2 x 0.2 s

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


def test_a_run_that_uses_up_its_time_budget_still_charges_the_whole_page_it_took(active, plan, sandbox):
    second = second_active_subscription(plan)
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=0.3))  # within 2 x 0.2 s

    with at(second.current_period_end - timedelta(hours=2)):
        report = renewals.subscription_renew_due(time_budget=0.2)

    assert report.as_dict() == {"charged": 2, "succeeded": 2, "declined": 0, "unknown": 0, "failed": []}
