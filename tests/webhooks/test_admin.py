"""Operators read the notification inbox and billing's state in the admin."""

import json
import uuid

import pytest
from django.test import Client

from billing.models import Payment, PaymentStatus
from graphql_api.auth import Viewer
from tests.helpers import pay_on_page, start_checkout
from webhooks.models import NotificationOutcome, UntrustedNotificationTally, YooKassaNotification

PASSWORD = "operator-password"


@pytest.fixture
def operator(django_user_model) -> Client:
    django_user_model.objects.create_superuser("operator", "operator@cinema.example", PASSWORD)
    client = Client()
    assert client.login(username="operator", password=PASSWORD)
    return client


def _notify(sandbox, payment: Payment, event: str, *, remote_addr: str = "127.0.0.1") -> None:
    body = {"type": "notification", "event": event, "object": sandbox.emulator.get_payment(payment.provider_payment_id)}
    Client().post(
        "/webhooks/yookassa/", data=json.dumps(body).encode(), content_type="application/json", REMOTE_ADDR=remote_addr
    )


def _subscribe(sandbox, viewer: Viewer, plan, card: str, event: str) -> Payment:
    result = start_checkout(viewer, plan)
    pay_on_page(result.payment.confirmation_url, card)
    _notify(sandbox, result.payment, event)
    return Payment.objects.get(pk=result.payment.pk)


@pytest.fixture
def paid(sandbox, viewer, plan) -> Payment:
    payment = _subscribe(sandbox, viewer, plan, "5555555555554444", "payment.succeeded")
    assert payment.status == PaymentStatus.SUCCEEDED
    return payment


@pytest.fixture
def declined(sandbox, plan) -> Payment:
    other = Viewer(id=uuid.uuid4(), email="declined@example.com")
    payment = _subscribe(sandbox, other, plan, "5555555555554600", "payment.canceled")
    assert payment.status == PaymentStatus.CANCELED
    return payment


@pytest.fixture
def rejected(sandbox) -> YooKassaNotification:
    """A notification from YooKassa's address that is not one (untrusted ones are only counted)."""
    Client().post("/webhooks/yookassa/", data=b"not json", content_type="application/json", REMOTE_ADDR="127.0.0.1")
    return YooKassaNotification.objects.get(outcome=NotificationOutcome.REJECTED)


@pytest.fixture
def untrusted(sandbox, paid) -> UntrustedNotificationTally:
    _notify(sandbox, paid, "payment.succeeded", remote_addr="8.8.8.8")
    return UntrustedNotificationTally.objects.get()


def _changelist(client: Client, url: str, query: dict | None = None) -> list:
    response = client.get(url, query or {})
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


@pytest.mark.django_db
def test_the_inbox_lists_every_notification(operator, paid, declined, rejected):
    response = operator.get("/admin/webhooks/yookassanotification/")

    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == set(YooKassaNotification.objects.all())
    assert response.context["cl"].result_count == 3
    assert paid.provider_payment_id in response.content.decode()
    assert declined.provider_payment_id in response.content.decode()


@pytest.mark.django_db
def test_the_inbox_is_searched_by_object_id(operator, paid, declined, rejected):
    rows = _changelist(operator, "/admin/webhooks/yookassanotification/", {"q": paid.provider_payment_id})

    assert {row.object_id for row in rows} == {paid.provider_payment_id}
    assert [row.outcome for row in rows] == [NotificationOutcome.PROCESSED]


@pytest.mark.django_db
def test_the_inbox_is_filtered_by_outcome(operator, paid, declined, rejected):
    rows = _changelist(operator, "/admin/webhooks/yookassanotification/", {"outcome": NotificationOutcome.REJECTED})

    assert rows == [rejected]


@pytest.mark.django_db
def test_a_notification_shows_its_raw_body(operator, rejected):
    response = operator.get(f"/admin/webhooks/yookassanotification/{rejected.pk}/change/")

    assert response.status_code == 200
    assert "not json" in response.content.decode()
    assert "Not a YooKassa notification." in response.content.decode()


@pytest.mark.django_db
def test_untrusted_notifications_are_listed_as_tallies_with_their_sample(operator, untrusted):
    rows = _changelist(operator, "/admin/webhooks/untrustednotificationtally/", {"q": "8.8.8.8"})
    response = operator.get(f"/admin/webhooks/untrustednotificationtally/{untrusted.pk}/change/")

    assert rows == [untrusted]
    assert response.status_code == 200
    assert "8.8.8.8/32" in response.content.decode()
    assert "payment.succeeded" in response.content.decode()


@pytest.mark.django_db
def test_the_tallies_are_read_only(operator, untrusted):
    add = operator.get("/admin/webhooks/untrustednotificationtally/add/")
    delete = operator.post(f"/admin/webhooks/untrustednotificationtally/{untrusted.pk}/delete/", {"post": "yes"})

    assert add.status_code == 403
    assert delete.status_code == 403
    assert UntrustedNotificationTally.objects.get() == untrusted


@pytest.mark.django_db
def test_the_subscriptions_list_shows_the_viewers(operator, paid, declined):
    rows = _changelist(operator, "/admin/billing/subscription/")

    assert {row.pk for row in rows} == {paid.subscription_id, declined.subscription_id}
    response = operator.get(f"/admin/billing/subscription/{paid.subscription_id}/change/")
    assert response.status_code == 200
    assert paid.provider_payment_id in response.content.decode()


@pytest.mark.django_db
def test_payments_are_searched_by_viewer_email_and_filtered_by_status(operator, viewer, paid, declined):
    by_email = _changelist(operator, "/admin/billing/payment/", {"q": viewer.email})
    succeeded = _changelist(operator, "/admin/billing/payment/", {"status": "succeeded"})
    canceled = _changelist(operator, "/admin/billing/payment/", {"status": "canceled"})

    assert by_email == [paid]
    assert succeeded == [paid]
    assert canceled == [declined]


@pytest.mark.django_db
def test_saved_payment_methods_are_listed(operator, paid):
    response = operator.get("/admin/billing/paymentmethod/")

    assert response.status_code == 200
    assert [method.pk for method in response.context["cl"].result_list] == [paid.payment_method_id]
    assert "Bank card *4444" in response.content.decode()


@pytest.mark.django_db
def test_billing_events_and_plans_are_listed(operator, paid, plans):
    events = _changelist(operator, "/admin/billing/billingevent/", {"type": "subscription.activated"})
    plan_rows = _changelist(operator, "/admin/plans/plan/")

    assert [event.payment_id for event in events] == [paid.pk]
    assert {plan.code for plan in plan_rows} == set(plans)
