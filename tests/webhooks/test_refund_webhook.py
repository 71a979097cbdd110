"""POST /webhooks/yookassa/ with refund.succeeded: stored, checked, and the refund re-fetched from
the API; the service acts on what the API says about the refund, never on the body.

The sandbox's own notifications are not delivered here (no notification URL is set): each test
posts the notification itself, taking the refund from the sandbox or forging one.
"""

import json
from decimal import Decimal

import pytest
from django.test import Client

from billing import services
from billing.errors import ProviderOutcomeUnknown
from billing.models import BillingEvent, Payment, Refund, RefundStatus, Subscription, SubscriptionStatus
from billing.money import Money
from billing.services import CancelMode
from sandbox.emulator import RefundOutcome, new_object_id
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import committed
from webhooks.models import NotificationOutcome, YooKassaNotification

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "/webhooks/yookassa/"
SUCCESS_CARD = "5555555555554444"


@pytest.fixture
def pending_refund(viewer, active, sandbox) -> Refund:
    """The viewer canceled now with a refund that YooKassa has accepted but not carried out yet."""
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    result = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )
    assert result.refund.status == RefundStatus.PENDING
    assert result.subscription.status == SubscriptionStatus.ACTIVE
    return result.refund


def _post(body: dict | bytes):
    """What YooKassa does, from a trusted (loopback) address; CSRF checks on."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client = Client(enforce_csrf_checks=True)
    return client.post(WEBHOOK_URL, data=data, content_type="application/json", REMOTE_ADDR="127.0.0.1")


def _refund_succeeded(obj: dict) -> dict:
    return {"type": "notification", "event": "refund.succeeded", "object": obj}


def _last_notification() -> YooKassaNotification:
    return YooKassaNotification.objects.latest("id")


def _state(refund: Refund) -> dict:
    """Everything a refund notification could change: the refund, its payment, the subscription, events."""
    refund = Refund.objects.select_related("payment__subscription").get(pk=refund.pk)
    subscription = refund.payment.subscription
    return {
        "refund": (refund.status, refund.provider_refund_id, refund.refunded_at, refund.provider_object),
        "payment": refund.payment.refunded_amount,
        "subscription": (
            subscription.status,
            subscription.auto_renew,
            subscription.cancel_at_period_end,
            subscription.canceled_at,
        ),
        "events": list(BillingEvent.objects.order_by("id").values_list("type", flat=True)),
    }


def _settled(sandbox, refund: Refund) -> dict:
    """YooKassa carries the refund out; the API object as it now is."""
    return sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")


# --- the refund succeeds -------------------------------------------------------------------------


def test_success_of_a_pending_refund_completes_it_and_ends_the_subscription(sandbox, pending_refund):
    api_refund = _settled(sandbox, pending_refund)
    body = json.dumps(_refund_succeeded(api_refund)).encode()

    response = _post(body)

    refund = Refund.objects.select_related("payment__subscription").get(pk=pending_refund.pk)
    subscription = refund.payment.subscription
    notification = _last_notification()
    assert response.status_code == 200
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Refund {refund.pk} is succeeded."
    assert notification.event == "refund.succeeded"
    assert notification.object_id == api_refund["id"]
    assert notification.payment == refund.payment
    assert notification.raw_body == body.decode()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.refunded_at is not None
    assert refund.provider_object == api_refund
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert subscription.status == SubscriptionStatus.CANCELED
    assert subscription.auto_renew is False
    assert subscription.canceled_at is not None
    assert list(BillingEvent.objects.filter(refund=refund).values_list("type", flat=True)) == [
        "refund.created",
        "refund.succeeded",
        "subscription.canceled",
    ]


def test_success_of_an_operators_partial_refund_leaves_the_subscription_active(sandbox, active, admin_user):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    pending = services.payment_refund_by_operator(
        payment_id=active.payments.get().pk, operator=admin_user, reason="Goodwill", amount=Money.of("100.00", "RUB")
    )
    api_refund = _settled(sandbox, pending)

    response = _post(_refund_succeeded(api_refund))

    refund = Refund.objects.select_related("payment__subscription").get(pk=pending.pk)
    assert response.status_code == 200
    assert _last_notification().outcome == NotificationOutcome.PROCESSED
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.payment.refunded_amount == Decimal("100.00")
    assert refund.payment.subscription.status == SubscriptionStatus.ACTIVE
    assert refund.payment.subscription.auto_renew is True
    assert BillingEvent.objects.filter(type="subscription.canceled").count() == 0


def test_the_same_success_delivered_again_is_a_duplicate(sandbox, pending_refund):
    body = _refund_succeeded(_settled(sandbox, pending_refund))
    assert _post(body).status_code == 200
    after_first = _state(pending_refund)

    response = _post(body)

    notification = _last_notification()
    assert response.status_code == 200
    assert notification.outcome == NotificationOutcome.DUPLICATE
    assert notification.detail == f"Refund {pending_refund.pk} is already succeeded."
    assert notification.payment_id == pending_refund.payment_id
    assert _state(pending_refund) == after_first
    assert YooKassaNotification.objects.count() == 2


def test_a_success_claim_for_a_refund_the_api_says_is_pending_changes_nothing(sandbox, pending_refund):
    api_refund = sandbox.emulator.get_refund(pending_refund.provider_refund_id)
    forged = {**api_refund, "status": "succeeded"}
    before = _state(pending_refund)

    response = _post(_refund_succeeded(forged))

    notification = _last_notification()
    assert api_refund["status"] == "pending"
    assert response.status_code == 200
    assert notification.outcome == NotificationOutcome.PROCESSED
    assert notification.detail == f"Refund {pending_refund.pk} is pending."
    assert _state(pending_refund) == before
    assert Payment.objects.get(pk=pending_refund.payment_id).refunded_amount == Decimal("0.00")
    assert Subscription.objects.get(payments__refunds=pending_refund).status == SubscriptionStatus.ACTIVE


def test_the_real_success_after_a_forged_one_still_completes_the_refund(sandbox, pending_refund):
    forged = {**sandbox.emulator.get_refund(pending_refund.provider_refund_id), "status": "succeeded"}
    assert _post(_refund_succeeded(forged)).status_code == 200

    response = _post(_refund_succeeded(_settled(sandbox, pending_refund)))

    refund = Refund.objects.select_related("payment__subscription").get(pk=pending_refund.pk)
    assert response.status_code == 200
    assert _last_notification().outcome == NotificationOutcome.PROCESSED
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.payment.subscription.status == SubscriptionStatus.CANCELED


# --- refunds that are not ours, or not anybody's -------------------------------------------------


def test_a_refund_yookassa_does_not_know_is_ignored_with_200(sandbox, pending_refund):
    unknown = {**sandbox.emulator.get_refund(pending_refund.provider_refund_id), "id": new_object_id("0015")}
    before = _state(pending_refund)

    response = _post(_refund_succeeded(unknown))

    notification = _last_notification()
    assert response.status_code == 200
    assert notification.outcome == NotificationOutcome.IGNORED
    assert notification.detail == "YooKassa does not know this refund."
    assert notification.object_id == unknown["id"]
    assert notification.payment is None
    assert _state(pending_refund) == before


def test_a_refund_at_yookassa_that_is_not_ours_is_ignored_with_200(sandbox, active):
    payment = active.payments.get()
    foreign = sandbox.emulator.create_refund(
        {"payment_id": payment.provider_payment_id, "amount": {"value": "10.00", "currency": "RUB"}}
    )

    response = _post(_refund_succeeded(foreign))

    notification = _last_notification()
    assert foreign["status"] == "succeeded"
    assert response.status_code == 200
    assert notification.outcome == NotificationOutcome.IGNORED
    assert notification.detail == "Not a refund of this service."
    assert notification.payment is None
    assert Refund.objects.count() == 0
    assert Payment.objects.get(pk=payment.pk).refunded_amount == Decimal("0.00")
    assert Subscription.objects.get(pk=active.pk).status == SubscriptionStatus.ACTIVE


# --- YooKassa unreachable, and a lost answer ------------------------------------------------------


@pytest.mark.parametrize("effect", [ApiEffect.ERROR_500, ApiEffect.ERROR_429, ApiEffect.ERROR_202, ApiEffect.DROP])
def test_when_the_refetch_fails_the_notification_is_deferred_with_503(sandbox, pending_refund, effect):
    body = json.dumps(_refund_succeeded(_settled(sandbox, pending_refund))).encode()
    before = _state(pending_refund)
    sandbox.faults.add(ApiFault(effect, kind="refunds.get", applied=False))

    response = _post(body)

    notification = _last_notification()
    assert response.status_code == 503
    assert notification.outcome == NotificationOutcome.DEFERRED
    assert notification.detail.startswith("Could not re-fetch: ")
    assert notification.object_id == pending_refund.provider_refund_id
    assert notification.trusted_source is True
    assert notification.raw_body == body.decode()
    assert _state(pending_refund) == before


def test_a_deferred_notification_redelivered_after_the_outage_is_processed(sandbox, pending_refund):
    body = _refund_succeeded(_settled(sandbox, pending_refund))
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.get", applied=False))
    assert _post(body).status_code == 503

    response = _post(body)

    refund = Refund.objects.select_related("payment__subscription").get(pk=pending_refund.pk)
    deferred, processed = YooKassaNotification.objects.order_by("id")
    assert response.status_code == 200
    assert deferred.outcome == NotificationOutcome.DEFERRED
    assert processed.outcome == NotificationOutcome.PROCESSED
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert refund.payment.subscription.status == SubscriptionStatus.CANCELED


def test_a_refund_whose_creation_answer_was_lost_is_found_through_its_metadata(sandbox, viewer, active):
    sandbox.faults.add(ApiFault(ApiEffect.DROP, kind="refunds.create", applied=True))
    with pytest.raises(ProviderOutcomeUnknown) as raised:
        services.subscription_cancel(
            viewer_id=viewer.id, subscription_id=active.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
        )
    lost = committed(raised.value)
    [api_refund] = sandbox.store.refunds_of_payment(active.payments.get().provider_payment_id)

    response = _post(_refund_succeeded(api_refund))

    refund = Refund.objects.select_related("payment__subscription").get()
    assert (lost.refund.status, lost.refund.provider_refund_id) == (RefundStatus.CREATING, None)
    assert api_refund["metadata"]["refund_id"] == str(refund.pk)
    assert response.status_code == 200
    assert _last_notification().outcome == NotificationOutcome.PROCESSED
    assert refund.pk == lost.refund.pk
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.provider_refund_id == api_refund["id"]
    assert refund.payment.refunded_amount == Decimal("299.00")
    assert refund.payment.subscription.status == SubscriptionStatus.CANCELED
    assert sandbox.store.count_refunds() == 1
