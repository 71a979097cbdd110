"""The billing admin: refunds with a quote to confirm, a reason and the operator recorded; history."""

from datetime import timedelta

import pytest
from django.test import Client

from billing import clock, services
from billing.models import BillingEvent, Refund, RefundInitiator, RefundStatus, SubscriptionStatus
from billing.services import renewals
from sandbox.emulator import RefundOutcome
from tests.helpers import pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


@pytest.fixture
def active(viewer, plan):
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    return services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription


@pytest.fixture
def operator(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_subscription_action_shows_the_quote_first(operator, active):
    page = operator.post(
        "/admin/billing/subscription/", {"action": "cancel_with_refund", "_selected_action": [active.pk]}
    )

    assert page.status_code == 200
    assert b"299.00 RUB" in page.content
    assert b"full" in page.content
    assert b'name="reason"' in page.content
    assert Refund.objects.count() == 0


def test_confirming_refunds_cancels_and_records_the_operator(operator, admin_user, active, sandbox):
    response = operator.post(
        "/admin/billing/subscription/",
        {"action": "cancel_with_refund", "_selected_action": [active.pk], "confirm": "yes", "reason": "Duplicate"},
        follow=True,
    )

    refund = Refund.objects.get()
    active.refresh_from_db()
    assert response.status_code == 200
    assert b"refund of 299.00 RUB is succeeded" in response.content
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.initiator == RefundInitiator.OPERATOR
    assert refund.operator == admin_user
    assert refund.reason == "Duplicate"
    assert active.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_reason_is_required(operator, active):
    response = operator.post(
        "/admin/billing/subscription/",
        {"action": "cancel_with_refund", "_selected_action": [active.pk], "confirm": "yes", "reason": " "},
        follow=True,
    )

    assert b"A reason is required." in response.content
    assert Refund.objects.count() == 0


def test_the_payment_action_refunds_the_remainder_and_keeps_the_subscription(operator, active):
    payment = active.payments.get()

    operator.post(
        "/admin/billing/payment/",
        {"action": "refund_remainder", "_selected_action": [payment.pk], "confirm": "yes", "reason": "Goodwill"},
    )

    payment.refresh_from_db()
    active.refresh_from_db()
    assert payment.refunded_amount == payment.amount
    assert active.status == SubscriptionStatus.ACTIVE


def test_refunds_show_inline_on_the_payment_page(operator, admin_user, active):
    services.subscription_cancel_with_refund_by_operator(subscription_id=active.pk, operator=admin_user, reason="R")
    payment = active.payments.get()

    page = operator.get(f"/admin/billing/payment/{payment.pk}/change/")

    assert page.status_code == 200
    assert b"Refunds" in page.content
    assert b"succeeded" in page.content


def test_operators_without_the_refund_permission_get_no_refund_action(db, active, django_user_model):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_subscription"))
    client = Client()
    client.force_login(clerk)

    page = client.get("/admin/billing/subscription/")

    assert page.status_code == 200
    assert b"cancel_with_refund" not in page.content


def test_the_subscription_page_shows_its_history_and_dunning(operator, active, sandbox):
    sandbox.emulator.set_payment_method_decline(active.payment_method.provider_method_id, "insufficient_funds")
    with clock.travel_to(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    page = operator.get(f"/admin/billing/subscription/{active.pk}/change/")
    listing = operator.get("/admin/billing/subscription/?renewal_failures__exact=1")

    assert page.status_code == 200
    assert b"History" in page.content
    assert b"subscription.renewal_failed" in page.content
    assert b"insufficient_funds" in page.content
    assert b"past_due" in page.content
    assert str(active.pk).encode() in listing.content


def test_a_refund_yookassa_cancels_is_reported_as_an_error_and_listed_with_the_canceled_ones(operator, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED

    response = operator.post(
        "/admin/billing/subscription/",
        {"action": "cancel_with_refund", "_selected_action": [active.pk], "confirm": "yes", "reason": "Duplicate"},
        follow=True,
    )
    canceled = operator.get("/admin/billing/refund/?status__exact=canceled")
    succeeded = operator.get("/admin/billing/refund/?status__exact=succeeded")

    refund = Refund.objects.get()
    active.refresh_from_db()
    assert refund.status == RefundStatus.CANCELED
    assert active.status == SubscriptionStatus.ACTIVE
    assert b'class="error"' in response.content
    assert b"YooKassa declined the refund (rejected_by_payee)" in response.content
    assert canceled.status_code == 200
    assert f"/admin/billing/refund/{refund.pk}/change/".encode() in canceled.content
    assert b"rejected_by_payee" in canceled.content
    assert f"/admin/billing/refund/{refund.pk}/change/".encode() not in succeeded.content
    assert BillingEvent.objects.filter(type="refund.canceled", refund=refund).count() == 1
