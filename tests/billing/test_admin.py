"""The billing admin: refunds with a quote to confirm, a reason and the operator recorded; history."""

import re
from datetime import timedelta

import pytest
from django.test import Client

from billing import clock, services
from billing.models import BillingEvent, Refund, RefundInitiator, RefundStatus, SubscriptionStatus
from billing.money import Money
from billing.services import renewals
from sandbox.emulator import RefundOutcome

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]


@pytest.fixture
def operator(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def confirmation_page(operator, changelist: str, action: str, selected: list):
    return operator.post(changelist, {"action": action, "_selected_action": selected})


def submit(operator, changelist: str, page, reason: str):
    """What the operator's browser posts from the confirmation page: its hidden fields and the reason."""
    data = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.content.decode()):
        data.setdefault(name, []).append(value)
    return operator.post(changelist, {**data, "reason": reason}, follow=True)


def confirm(operator, changelist: str, action: str, selected: list, reason: str):
    page = confirmation_page(operator, changelist, action, selected)
    return submit(operator, changelist, page, reason)


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
    response = confirm(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk], "Duplicate")

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
    response = confirm(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk], " ")

    assert b"A reason is required." in response.content
    assert Refund.objects.count() == 0


def test_the_payment_action_refunds_the_remainder_and_keeps_the_subscription(operator, active):
    payment = active.payments.get()

    confirm(operator, "/admin/billing/payment/", "refund_remainder", [payment.pk], "Goodwill")

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
    with clock.moved_to(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    page = operator.get(f"/admin/billing/subscription/{active.pk}/change/")
    listing = operator.get("/admin/billing/subscription/?renewal_failures__exact=1")

    assert page.status_code == 200
    assert b"History" in page.content
    assert b"subscription.renewal_failed" in page.content
    assert b"insufficient_funds" in page.content
    assert b"past_due" in page.content
    assert str(active.pk).encode() in listing.content


def test_the_quote_of_a_subscription_canceled_with_a_refund_is_nothing(operator, admin_user, active):
    with clock.moved_to(active.current_period_start + timedelta(days=10)):
        services.subscription_cancel_with_refund_by_operator(subscription_id=active.pk, operator=admin_user, reason="R")
        page = confirmation_page(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk])

    assert b"<strong>0.00 RUB</strong>" in page.content
    assert b"nothing_left" in page.content


def test_a_quote_that_changed_before_the_confirmation_is_refused(operator, active, sandbox):
    with clock.moved_to(active.current_period_start + timedelta(days=3)):
        page = confirmation_page(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk])
    with clock.moved_to(active.current_period_start + timedelta(days=10)):
        response = submit(operator, "/admin/billing/subscription/", page, "Duplicate")

    active.refresh_from_db()
    assert b"<strong>299.00 RUB</strong>" in page.content
    assert b"not the 299.00 RUB confirmed" in response.content
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0


def test_a_payment_remainder_that_changed_before_the_confirmation_is_refused(operator, admin_user, active, sandbox):
    payment = active.payments.get()
    page = confirmation_page(operator, "/admin/billing/payment/", "refund_remainder", [payment.pk])
    services.payment_refund_by_operator(
        payment_id=payment.pk, operator=admin_user, reason="Goodwill", amount=Money.of("100.00", "RUB")
    )

    response = submit(operator, "/admin/billing/payment/", page, "The rest")

    payment.refresh_from_db()
    assert b"<strong>299.00 RUB</strong>" in page.content
    assert b"Between 0.01 and 199.00 RUB can be refunded." in response.content
    assert payment.refunded_amount == Money.of("100.00", "RUB").amount
    assert sandbox.store.count_refunds() == 1


def test_a_reason_longer_than_its_column_is_refused_not_cut(operator, active, sandbox):
    response = confirm(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk], "x" * 251)

    active.refresh_from_db()
    assert b"A reason has at most 250 characters; this one has 251." in response.content
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0


def test_a_confirmation_without_the_amount_shown_is_refused(operator, active, sandbox):
    response = operator.post(
        "/admin/billing/subscription/",
        {"action": "cancel_with_refund", "_selected_action": [active.pk], "confirm": "yes", "reason": "Duplicate"},
        follow=True,
    )

    assert b"no confirmed amount" in response.content
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0


def test_a_refund_yookassa_cancels_is_reported_as_an_error_and_listed_with_the_canceled_ones(operator, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED

    response = confirm(operator, "/admin/billing/subscription/", "cancel_with_refund", [active.pk], "Duplicate")
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
