"""payment_apply_provider_state: the one place YooKassa's truth becomes ours."""

import dataclasses
from datetime import datetime

import pytest

from billing import services
from billing.errors import ProviderOutcomeUnknown
from billing.gateway.interface import ProviderPaymentStatus
from billing.models import BillingEvent, Payment, PaymentMethod, PaymentStatus, SubscriptionStatus
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import committed, pay_on_page, start_checkout

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(viewer, plan, sandbox):
    return start_checkout(viewer, plan).payment


def paid(payment: Payment, card: str = "5555555555554444"):
    from billing.gateway import get_gateway

    pay_on_page(payment.confirmation_url, card)
    return get_gateway().get_payment(payment.provider_payment_id)


def test_success_activates_one_period_from_the_moment_of_payment(pending, plan):
    provider = paid(pending)

    payment = services.payment_apply_provider_state(provider_payment=provider)

    subscription = payment.subscription
    subscription.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.paid_at == provider.captured_at
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.current_period_start == provider.captured_at
    assert subscription.current_period_end == plan.period.end_after(provider.captured_at)
    assert subscription.auto_renew is True
    assert subscription.payment_method.title == "Bank card *4444"
    assert subscription.payment_method.provider_method_id == provider.payment_method.id
    assert list(BillingEvent.objects.values_list("type", flat=True)) == [
        "subscription.created",
        "payment.created",
        "payment.succeeded",
        "subscription.activated",
        "entitlements.changed",
    ]


def test_a_card_not_saved_means_no_auto_renewal(viewer, plan, sandbox):
    result = start_checkout(viewer, plan, save_payment_method=False)

    payment = services.payment_apply_provider_state(provider_payment=paid(result.payment))

    payment.subscription.refresh_from_db()
    assert payment.subscription.status == SubscriptionStatus.ACTIVE
    assert payment.subscription.auto_renew is False
    assert payment.subscription.payment_method is None
    assert PaymentMethod.objects.count() == 0


def test_news_applied_twice_is_applied_once(pending):
    provider = paid(pending)
    first = services.payment_apply_provider_state(provider_payment=provider)

    again = services.payment_apply_provider_state(provider_payment=provider)

    again.subscription.refresh_from_db()
    assert again.subscription.current_period_end == first.subscription.current_period_end
    assert BillingEvent.objects.filter(type="subscription.activated").count() == 1


def test_a_decline_fails_the_payment_and_its_subscription(pending):
    payment = services.payment_apply_provider_state(provider_payment=paid(pending, "5555555555554600"))

    payment.subscription.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert payment.cancellation_party == "payment_network"
    assert payment.cancellation_reason == "insufficient_funds"
    assert payment.subscription.status == SubscriptionStatus.FAILED
    assert BillingEvent.objects.filter(type="subscription.failed").count() == 1


def test_a_final_status_never_moves_again(pending, caplog):
    provider = paid(pending)
    services.payment_apply_provider_state(provider_payment=provider)
    contradiction = dataclasses.replace(provider, status=ProviderPaymentStatus.CANCELED)

    payment = services.payment_apply_provider_state(provider_payment=contradiction)

    payment.subscription.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.subscription.status == SubscriptionStatus.ACTIVE
    assert "left for an operator" in caplog.text
    assert BillingEvent.objects.filter(type="payment.provider_conflict").count() == 1


def test_late_pending_news_after_success_changes_nothing(pending):
    provider = paid(pending)
    services.payment_apply_provider_state(provider_payment=provider)

    payment = services.payment_apply_provider_state(
        provider_payment=dataclasses.replace(provider, status=ProviderPaymentStatus.PENDING)
    )

    assert payment.status == PaymentStatus.SUCCEEDED


def test_a_payment_whose_answer_was_lost_is_found_by_its_metadata(viewer, plan, sandbox):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="payments.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        start_checkout(viewer, plan)
    result = committed(raised.value)
    assert result.payment.status == PaymentStatus.CREATING
    [created] = sandbox.store.recent_payments(1)

    payment = services.payment_refresh(provider_payment_id=created["id"])

    assert payment.pk == result.payment.pk
    assert payment.provider_payment_id == created["id"]
    assert payment.status == PaymentStatus.PENDING
    assert payment.confirmation_url == created["confirmation"]["confirmation_url"]


def test_a_payment_that_is_not_ours_is_refused(sandbox, db):
    foreign = sandbox.emulator.create_payment(
        {
            "amount": {"value": "1.00", "currency": "RUB"},
            "confirmation": {"type": "redirect", "return_url": "https://x.example/"},
            "metadata": {"payment_id": "not-a-uuid"},
        }
    )

    with pytest.raises(services.UnknownProviderPayment):
        services.payment_refresh(provider_payment_id=foreign["id"])


def test_period_starts_at_yookassas_capture_time_not_at_processing_time(pending):
    provider = dataclasses.replace(paid(pending), captured_at=datetime.fromisoformat("2026-01-31T10:00:00+00:00"))

    payment = services.payment_apply_provider_state(provider_payment=provider)

    payment.subscription.refresh_from_db()
    assert payment.subscription.current_period_start.isoformat() == "2026-01-31T10:00:00+00:00"
    assert payment.subscription.current_period_end.isoformat() == "2026-02-28T10:00:00+00:00"
