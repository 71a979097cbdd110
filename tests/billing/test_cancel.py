"""Canceling: at the period's end, or now with the policy's refund, exactly once."""

import uuid
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import pytest

from billing import clock, services
from billing.errors import (
    AlreadyCanceled,
    IdempotencyKeyReused,
    NotFound,
    NotRefundable,
    ProviderOutcomeUnknown,
    RefundInProgress,
    SubscriptionNotActive,
)
from billing.models import BillingEvent, Refund, RefundInitiator, RefundStatus, SubscriptionStatus
from billing.money import Money
from billing.refund_policy import RefundRule
from billing.services import CancelMode
from graphql_api.auth import Viewer
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import SeenAtYooKassa, pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


@pytest.fixture
def active(viewer, plan):
    """An active Basic subscription (299.00 RUB, one month), just paid."""
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    payment = services.payment_refresh(provider_payment_id=payment.provider_payment_id)
    payment.subscription.refresh_from_db()
    return payment.subscription


def cancel(viewer, subscription, mode=CancelMode.NOW_WITH_REFUND, key=None):
    return services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=subscription.pk, mode=mode, idempotency_key=key
    )


def days_after_start(subscription, days):
    return clock.travel_to(subscription.current_period_start + timedelta(days=days))


def test_on_day_zero_the_quote_is_everything(active):
    quote, payment = services.subscription_refund_quote(subscription=active)

    assert quote.rule is RefundRule.FULL
    assert quote.amount == Money.of("299.00", "RUB")
    assert quote.period_end == active.current_period_end
    assert payment.subscription_id == active.pk


def test_cancel_now_refunds_the_quote_and_ends_the_subscription(viewer, active, sandbox):
    result = cancel(viewer, active)

    assert result.problem is None
    assert result.refund.status == RefundStatus.SUCCEEDED
    assert result.refund.money == Money.of("299.00", "RUB")
    assert result.refund.initiator == RefundInitiator.VIEWER
    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert result.subscription.auto_renew is False
    assert result.subscription.canceled_at is not None
    [provider_refund] = sandbox.store.refunds_of_payment(result.refund.payment.provider_payment_id)
    assert provider_refund["amount"] == {"value": "299.00", "currency": "RUB"}
    assert provider_refund["status"] == "succeeded"
    assert result.refund.payment.refunded_amount == result.refund.amount
    assert list(BillingEvent.objects.filter(refund=result.refund).values_list("type", flat=True)) == [
        "refund.created",
        "refund.succeeded",
        "subscription.canceled",
    ]


REFUND_PATHS = {
    "viewer cancels": lambda viewer, subscription, operator: cancel(viewer, subscription).refund,
    "operator cancels": lambda viewer, subscription, operator: (
        services.subscription_cancel_with_refund_by_operator(
            subscription_id=subscription.pk, operator=operator, reason="Asked by phone"
        ).refund
    ),
    "operator refunds the payment": lambda viewer, subscription, operator: services.payment_refund_by_operator(
        payment_id=subscription.payments.get().pk, operator=operator, reason="Goodwill"
    )[0],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("refund_by", REFUND_PATHS.values(), ids=REFUND_PATHS.keys())
def test_the_refund_row_is_committed_before_yookassa_is_asked(viewer, active, admin_user, seen_at_yookassa, refund_by):
    refund = refund_by(viewer, active, admin_user)

    assert refund.status == RefundStatus.SUCCEEDED
    assert [seen for seen in seen_at_yookassa if seen.kind == "refunds.create"] == [
        SeenAtYooKassa("refunds.create", refund.idempotence_key, RefundStatus.CREATING)
    ]


def test_ten_days_in_nineteen_thirtieths_come_back(viewer, plans, sandbox):
    thirty_days = plans["basic-monthly"]
    thirty_days.period_unit, thirty_days.period_count = "day", 30
    thirty_days.save()
    payment = start_checkout(viewer, thirty_days).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription
    subscription.refresh_from_db()

    with days_after_start(subscription, 10):
        quote, _ = services.subscription_refund_quote(subscription=subscription)
        result = cancel(viewer, subscription)

    assert quote.rule is RefundRule.PRO_RATA
    assert quote.amount == Money.of("189.36", "RUB")  # 299 * 19 / 30, rounded down
    assert result.refund.money == quote.amount
    assert sandbox.store.refunds_of_payment(payment.provider_payment_id)[0]["amount"]["value"] == "189.36"


def test_three_days_in_everything_comes_back(viewer, active):
    with days_after_start(active, 3):
        result = cancel(viewer, active)

    assert result.refund.money == Money.of("299.00", "RUB")


def test_on_the_last_day_nothing_comes_back_and_nothing_changes(viewer, active, sandbox):
    last_day = active.current_period_end - timedelta(hours=1)

    with clock.travel_to(last_day):
        quote, _ = services.subscription_refund_quote(subscription=active)
        with pytest.raises(NotRefundable):
            cancel(viewer, active)

    active.refresh_from_db()
    assert quote.rule is RefundRule.NOTHING_LEFT
    assert quote.refundable is False
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0


def test_a_monthly_period_counts_its_real_days(viewer, active):
    period_days = (active.current_period_end.date() - active.current_period_start.date()).days

    with days_after_start(active, 10):
        quote, _ = services.subscription_refund_quote(subscription=active)

    unused = period_days - 11
    assert quote.unused_days == unused
    assert quote.amount.amount == (Decimal(299) * unused / period_days).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def test_cancel_at_period_end_keeps_access_and_stops_renewal(viewer, active, sandbox):
    result = cancel(viewer, active, CancelMode.AT_PERIOD_END)

    assert result.refund is None
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    assert result.subscription.cancel_at_period_end is True
    assert result.subscription.auto_renew is False
    assert sandbox.store.count_refunds() == 0
    with pytest.raises(AlreadyCanceled):
        cancel(viewer, active, CancelMode.AT_PERIOD_END)


def test_after_cancel_at_period_end_a_refund_is_still_possible(viewer, active):
    cancel(viewer, active, CancelMode.AT_PERIOD_END)

    result = cancel(viewer, active)

    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert result.subscription.cancel_at_period_end is False


def test_a_canceled_subscription_cannot_be_canceled_again(viewer, active, sandbox):
    cancel(viewer, active)

    for mode in CancelMode:
        with pytest.raises(AlreadyCanceled):
            cancel(viewer, active, mode)

    assert sandbox.store.count_refunds() == 1


def test_the_same_key_returns_the_first_result(viewer, active, sandbox):
    first = cancel(viewer, active, key="cancel-1")

    again = cancel(viewer, active, key="cancel-1")

    assert again.refund.pk == first.refund.pk
    assert sandbox.store.count_refunds() == 1
    with pytest.raises(IdempotencyKeyReused):
        cancel(viewer, active, CancelMode.AT_PERIOD_END, key="cancel-1")


def test_another_viewers_subscription_is_not_found(active, sandbox):
    stranger = Viewer(id=uuid.uuid4(), email=None)

    with pytest.raises(NotFound):
        cancel(stranger, active)

    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE


def test_an_unpaid_subscription_is_not_active(viewer, plan):
    pending = start_checkout(viewer, plan).subscription

    with pytest.raises(SubscriptionNotActive):
        cancel(viewer, pending)


def test_a_refund_yookassa_cancels_leaves_the_subscription_as_it_was(viewer, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED

    result = cancel(viewer, active)

    assert result.refund.status == RefundStatus.CANCELED
    assert result.refund.cancellation_reason == "rejected_by_payee"
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    assert result.refund.payment.refunded_amount == 0
    assert BillingEvent.objects.filter(type="refund.canceled").count() == 1


def test_a_pending_refund_blocks_a_second_one_and_ends_the_subscription_when_it_succeeds(viewer, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    result = cancel(viewer, active)
    assert result.refund.status == RefundStatus.PENDING
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    with pytest.raises(RefundInProgress):
        cancel(viewer, active)

    sandbox.emulator.settle_refund(result.refund.provider_refund_id, "succeeded")
    refund = services.refund_refresh(provider_refund_id=result.refund.provider_refund_id)

    active.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert active.status == SubscriptionStatus.CANCELED


def test_a_timeout_then_a_retry_makes_one_refund(viewer, active, sandbox, settings):
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="refunds.create", delay=1.0))
    first = cancel(viewer, active)
    assert isinstance(first.problem, ProviderOutcomeUnknown)
    assert first.refund.status == RefundStatus.CREATING
    assert first.subscription.status == SubscriptionStatus.ACTIVE

    retried = cancel(viewer, active)

    assert retried.refund.pk == first.refund.pk
    assert retried.refund.status == RefundStatus.SUCCEEDED
    assert retried.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_500_after_yookassa_refunded_then_a_retry_with_the_key_makes_one_refund(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=True))
    first = cancel(viewer, active, key="cancel-1")
    assert first.refund.status == RefundStatus.CREATING

    retried = cancel(viewer, active, key="cancel-1")

    assert retried.refund.status == RefundStatus.SUCCEEDED
    assert retried.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_the_refund_webhook_completes_a_refund_whose_answer_was_lost(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="refunds.create", applied=True))
    first = cancel(viewer, active)
    assert first.refund.provider_refund_id is None
    [provider_refund] = sandbox.store.refunds_of_payment(first.refund.payment.provider_payment_id)

    refund = services.refund_refresh(provider_refund_id=provider_refund["id"])

    active.refresh_from_db()
    assert refund.pk == first.refund.pk
    assert refund.status == RefundStatus.SUCCEEDED
    assert active.status == SubscriptionStatus.CANCELED


def test_an_operator_refunds_with_a_reason(active, admin_user, sandbox):
    result = services.subscription_cancel_with_refund_by_operator(
        subscription_id=active.pk, operator=admin_user, reason="Double charge reported by phone"
    )

    assert result.refund.initiator == RefundInitiator.OPERATOR
    assert result.refund.operator == admin_user
    assert result.refund.reason == "Double charge reported by phone"
    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.refunds_of_payment(result.refund.payment.provider_payment_id)[0]["description"] == (
        "Double charge reported by phone"
    )


def test_an_operator_refunds_what_is_left_of_a_payment_without_touching_the_subscription(active, admin_user):
    payment = active.payments.get()

    partial, _ = services.payment_refund_by_operator(
        payment_id=payment.pk, operator=admin_user, reason="Goodwill", amount=Money.of("100.00", "RUB")
    )
    rest, _ = services.payment_refund_by_operator(payment_id=payment.pk, operator=admin_user, reason="Rest")

    payment.refresh_from_db()
    active.refresh_from_db()
    assert (partial.money, rest.money) == (Money.of("100.00", "RUB"), Money.of("199.00", "RUB"))
    assert payment.refunded_amount == payment.amount
    assert active.status == SubscriptionStatus.ACTIVE
    with pytest.raises(NotRefundable):
        services.payment_refund_by_operator(payment_id=payment.pk, operator=admin_user, reason="Again")
