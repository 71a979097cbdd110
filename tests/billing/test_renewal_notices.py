"""Upcoming-renewal notices: once per period, and again when the amount to be charged changes."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import (
    BillingEvent,
    Payment,
    PaymentKind,
)
from billing.services import lifecycle, renewals
from tests.billing.renewal_steps import at, cancel_with_a_refund_left_pending, charge_unanswered

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def notices(subscription) -> list[str]:
    return [
        event.payload["amount"]
        for event in BillingEvent.objects.filter(subscription=subscription, type="subscription.renewal_upcoming")
    ]


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
