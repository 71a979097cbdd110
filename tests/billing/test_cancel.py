"""Canceling: at the period's end, or now with the policy's refund, exactly once."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing import clock, services
from billing.errors import (
    AlreadyCanceled,
    ErrorCode,
    IdempotencyKeyReused,
    NotFound,
    NotRefundable,
    ProviderOutcomeUnknown,
    RefundCanceled,
    RefundInProgress,
    SubscriptionNotActive,
)
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
from billing.money import Money
from billing.refund_policy import RefundRule
from billing.services import CancelMode, lifecycle, reconciliation, renewals
from graphql_api.auth import Viewer
from sandbox.emulator import RefundOutcome
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import (
    SeenAtYooKassa,
    billing_and_sandbox_at,
    committed,
    pay_on_page,
    start_checkout,
    subscribe_and_pay_at,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


def cancel(viewer, subscription, mode=CancelMode.NOW_WITH_REFUND, key=None):
    return services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=subscription.pk, mode=mode, idempotency_key=key
    )


def days_after_start(subscription, days):
    return clock.moved_to(subscription.current_period_start + timedelta(days=days))


@pytest.fixture
def thirty_days(plans):
    """Basic billed every 30 days instead of every month."""
    plan = plans["basic-monthly"]
    plan.period_unit, plan.period_count = "day", 30
    plan.save()
    return plan


def test_on_day_zero_the_quote_is_everything(active):
    quote, payment = services.subscription_refund_quote(subscription=active)

    assert quote.rule is RefundRule.FULL
    assert quote.amount == Money.of("299.00", "RUB")
    assert quote.period_end == active.current_period_end
    assert payment.subscription_id == active.pk


def test_cancel_now_refunds_the_quote_and_ends_the_subscription(viewer, active, sandbox):
    result = cancel(viewer, active)

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
    ),
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

    with clock.moved_to(last_day):
        quote, _ = services.subscription_refund_quote(subscription=active)
        with pytest.raises(NotRefundable):
            cancel(viewer, active)

    active.refresh_from_db()
    assert quote.rule is RefundRule.NOTHING_LEFT
    assert quote.refundable is False
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0


PAID_ON_1_MARCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days_in", "rule", "amount"),
    [
        (timedelta(days=3), RefundRule.FULL, "299.00"),
        # 1..11 March used (the day of payment and today included), 19 of 30 days unused.
        (timedelta(days=10), RefundRule.PRO_RATA, "189.36"),  # 299 * 19 / 30 = 189.366..., rounded down
        (timedelta(days=29, hours=11), RefundRule.NOTHING_LEFT, "0.00"),
    ],
    ids=["3 days", "10 days", "last day"],
)
def test_a_thirty_day_period_on_fixed_dates(viewer, thirty_days, sandbox, days_in, rule, amount):
    subscription = subscribe_and_pay_at(PAID_ON_1_MARCH, viewer, thirty_days, sandbox)
    # Today's price is not what was paid: the refund is of what was paid.
    thirty_days.price = Decimal("349.00")
    thirty_days.save()

    with billing_and_sandbox_at(PAID_ON_1_MARCH + days_in, sandbox):
        quote, _ = services.subscription_refund_quote(subscription=subscription)
        if rule is RefundRule.NOTHING_LEFT:
            with pytest.raises(NotRefundable):
                cancel(viewer, subscription)
            refunded = None
        else:
            refunded = cancel(viewer, subscription).refund.money

    assert (quote.rule, quote.amount, quote.period_days) == (rule, Money.of(amount, "RUB"), 30)
    assert refunded == (None if rule is RefundRule.NOTHING_LEFT else Money.of(amount, "RUB"))
    assert Refund.objects.count() == (0 if rule is RefundRule.NOTHING_LEFT else 1)


@pytest.mark.parametrize(
    ("paid_on", "period_days", "unused_days", "amount"),
    [
        (datetime(2026, 1, 1, 9, 0, tzinfo=UTC), 31, 20, "192.90"),  # 299 * 20 / 31 = 192.903...
        (datetime(2026, 2, 1, 9, 0, tzinfo=UTC), 28, 17, "181.53"),  # 299 * 17 / 28 = 181.535...
        (datetime(2028, 2, 1, 9, 0, tzinfo=UTC), 29, 18, "185.58"),  # 299 * 18 / 29 = 185.586...
    ],
    ids=["January", "February", "leap-year February"],
)
def test_a_monthly_period_counts_its_real_days(viewer, plan, sandbox, paid_on, period_days, unused_days, amount):
    subscription = subscribe_and_pay_at(paid_on, viewer, plan, sandbox)

    with billing_and_sandbox_at(paid_on + timedelta(days=10), sandbox):
        quote, _ = services.subscription_refund_quote(subscription=subscription)
        result = cancel(viewer, subscription)

    assert (quote.period_days, quote.unused_days) == (period_days, unused_days)
    assert quote.rule is RefundRule.PRO_RATA
    assert quote.amount == Money.of(amount, "RUB")
    assert result.refund.money == quote.amount


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

    with pytest.raises(RefundCanceled) as raised:
        cancel(viewer, active)

    result = committed(raised.value)
    assert result.refund.status == RefundStatus.CANCELED
    assert result.refund.cancellation_reason == "rejected_by_payee"
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    assert result.refund.payment.refunded_amount == 0
    assert BillingEvent.objects.filter(type="refund.canceled").count() == 1
    assert raised.value.code is ErrorCode.REFUND_CANCELED


def test_a_repeat_of_a_refund_yookassa_canceled_reports_it_again(viewer, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED
    with pytest.raises(RefundCanceled) as raised:
        cancel(viewer, active, key="cancel-declined")
    first = committed(raised.value)

    with pytest.raises(RefundCanceled) as raised_again:
        cancel(viewer, active, key="cancel-declined")

    again = committed(raised_again.value)
    assert again.refund.pk == first.refund.pk
    assert again.refund.status == RefundStatus.CANCELED
    assert again.subscription.status == SubscriptionStatus.ACTIVE
    assert sandbox.store.count_refunds() == 1


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
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        cancel(viewer, active)
    first = committed(raised.value)
    assert first.refund.status == RefundStatus.CREATING
    assert first.subscription.status == SubscriptionStatus.ACTIVE

    retried = cancel(viewer, active)

    assert retried.refund.pk == first.refund.pk
    assert retried.refund.status == RefundStatus.SUCCEEDED
    assert retried.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_500_after_yookassa_refunded_then_a_retry_with_the_key_makes_one_refund(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        cancel(viewer, active, key="cancel-1")
    first = committed(raised.value)
    assert first.refund.status == RefundStatus.CREATING

    retried = cancel(viewer, active, key="cancel-1")

    assert retried.refund.status == RefundStatus.SUCCEEDED
    assert retried.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_the_refund_webhook_completes_a_refund_whose_answer_was_lost(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="refunds.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        cancel(viewer, active)
    first = committed(raised.value)
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

    partial = services.payment_refund_by_operator(
        payment_id=payment.pk, operator=admin_user, reason="Goodwill", amount=Money.of("100.00", "RUB")
    )
    rest = services.payment_refund_by_operator(payment_id=payment.pk, operator=admin_user, reason="Rest")

    payment.refresh_from_db()
    active.refresh_from_db()
    assert (partial.money, rest.money) == (Money.of("100.00", "RUB"), Money.of("199.00", "RUB"))
    assert payment.refunded_amount == payment.amount
    assert active.status == SubscriptionStatus.ACTIVE
    with pytest.raises(NotRefundable):
        services.payment_refund_by_operator(payment_id=payment.pk, operator=admin_user, reason="Again")


# --- what the quote offers ---------------------------------------------------------------------


def test_after_a_cancellation_with_a_refund_the_quote_offers_nothing(viewer, thirty_days, sandbox):
    subscription = subscribe_and_pay_at(PAID_ON_1_MARCH, viewer, thirty_days, sandbox)
    with billing_and_sandbox_at(PAID_ON_1_MARCH + timedelta(days=10), sandbox):
        canceled = cancel(viewer, subscription)

        quote, _ = services.subscription_refund_quote(subscription=canceled.subscription)

    # 189.36 of 299.00 came back; what is left of the payment is not on offer for an ended subscription.
    assert canceled.refund.money == Money.of("189.36", "RUB")
    assert canceled.subscription.status == SubscriptionStatus.CANCELED
    assert quote.rule is RefundRule.NOTHING_LEFT
    assert quote.amount == Money.zero("RUB")
    assert quote.refundable is False


def test_while_the_refund_that_ends_the_subscription_is_in_flight_the_quote_offers_nothing(
    viewer, thirty_days, sandbox
):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    subscription = subscribe_and_pay_at(PAID_ON_1_MARCH, viewer, thirty_days, sandbox)
    with billing_and_sandbox_at(PAID_ON_1_MARCH + timedelta(days=10), sandbox):
        pending = cancel(viewer, subscription)

        quote, _ = services.subscription_refund_quote(subscription=pending.subscription)

    assert pending.refund.status == RefundStatus.PENDING
    assert pending.subscription.status == SubscriptionStatus.ACTIVE
    assert quote.rule is RefundRule.NOTHING_LEFT
    assert quote.refundable is False


def test_the_quote_and_the_refund_come_from_the_payment_that_started_the_period(viewer, active, sandbox):
    """Not from the latest payment: here a duplicate paid later and given back in full."""
    paid = active.payments.get()
    duplicate = Payment.objects.create(
        viewer_id=active.viewer_id,
        subscription=active,
        kind=PaymentKind.INITIAL,
        amount=paid.amount,
        currency=paid.currency,
        description=paid.description,
        status=PaymentStatus.SUCCEEDED,
        idempotence_key="payment-duplicate",
        provider_payment_id="duplicate-payment",
        paid_at=paid.paid_at + timedelta(hours=1),
        refunded_amount=paid.amount,
    )

    quote, quoted_payment = services.subscription_refund_quote(subscription=active)
    result = cancel(viewer, active)

    assert quoted_payment == paid
    assert (quote.rule, quote.amount) == (RefundRule.FULL, Money.of("299.00", "RUB"))
    assert result.refund.payment == paid
    assert result.refund.money == Money.of("299.00", "RUB")
    assert result.subscription.status == SubscriptionStatus.CANCELED
    duplicate.refresh_from_db()
    assert duplicate.refunds.count() == 0


def test_after_a_renewal_the_renewal_is_quoted_and_refunded_on_its_own_period(viewer, plan, sandbox):
    subscription = subscribe_and_pay_at(PAID_ON_1_MARCH, viewer, plan, sandbox)
    first_end = subscription.current_period_end  # 1 April
    plan.price = Decimal("349.00")
    plan.save()
    with billing_and_sandbox_at(first_end - timedelta(hours=2), sandbox):
        renewals.subscription_renew_due()
    renewal = Payment.objects.get(kind=PaymentKind.RENEWAL)
    subscription.refresh_from_db()

    with billing_and_sandbox_at(first_end + timedelta(days=10), sandbox):
        quote, quoted_payment = services.subscription_refund_quote(subscription=subscription)
        result = cancel(viewer, subscription)

    # April: 30 days, 1..11 April used, 19 unused, of the 349.00 the renewal charged.
    assert renewal.status == PaymentStatus.SUCCEEDED
    assert subscription.current_period_start == first_end
    assert quoted_payment == renewal
    assert (quote.rule, quote.period_days, quote.unused_days) == (RefundRule.PRO_RATA, 30, 19)
    assert quote.amount == Money.of("221.03", "RUB")  # 349 * 19 / 30 = 221.033...
    assert result.refund.payment == renewal
    assert result.refund.money == quote.amount
    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert Payment.objects.get(kind=PaymentKind.INITIAL).refunds.count() == 0


# --- past due ----------------------------------------------------------------------------------


def test_canceling_a_past_due_subscription_at_the_period_end_ends_it_now_and_stops_dunning(viewer, active, sandbox):
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    with clock.moved_to(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.PAST_DUE
    charges = sandbox.store.count_payments()

    result = cancel(viewer, active, CancelMode.AT_PERIOD_END)

    with clock.moved_to(active.next_renewal_attempt_at + timedelta(minutes=1)):
        retried = renewals.subscription_retry_past_due()
    with clock.moved_to(active.current_period_end + timedelta(days=30)):
        lifecycle.subscription_expire_due()
    active.refresh_from_db()
    assert result.refund is None
    assert result.subscription.status == SubscriptionStatus.CANCELED
    assert active.status == SubscriptionStatus.CANCELED
    assert (active.auto_renew, active.next_renewal_attempt_at) == (False, None)
    assert active.canceled_at is not None
    assert retried.charged == 0
    assert sandbox.store.count_payments() == charges
    assert sandbox.store.count_refunds() == 0
    assert BillingEvent.objects.filter(subscription=active, type="subscription.canceled").count() == 1


# --- reconciliation --------------------------------------------------------------------------


def test_a_500_after_yookassa_refunded_and_no_retry_reconciliation_makes_it_one_refund(viewer, active, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        cancel(viewer, active)
    first = committed(raised.value)
    assert first.refund.status == RefundStatus.CREATING
    assert first.subscription.status == SubscriptionStatus.ACTIVE
    assert sandbox.store.count_refunds() == 1

    report = reconciliation.billing_reconcile(now=clock.domain_now() + timedelta(minutes=6))

    refund = Refund.objects.get()
    active.refresh_from_db()
    [provider_refund] = sandbox.store.refunds_of_payment(refund.payment.provider_payment_id)
    assert report.settled == 1
    assert refund.pk == first.refund.pk
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.provider_refund_id == provider_refund["id"]
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert active.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1
