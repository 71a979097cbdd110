"""Checkout and its webhook under real concurrency: threads posting over HTTP to the live server.

PostgreSQL only: the partial unique indexes, row locks and READ COMMITTED retries are what is
under test, and SQLite serializes every writer.
"""

import collections
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.db import connection, transaction
from django.db.models import F
from strawberry.relay import to_base64

from billing.models import (
    BillingEvent,
    ClientRequest,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from sandbox.faults import ApiEffect, ApiFault
from tests.helpers import GraphQLClient, eventually, make_token, pay_on_page
from webhooks.models import NotificationOutcome, UntrustedNotificationTally, YooKassaNotification

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RETURN_URL = "https://cinema.example/return"
SUCCESS_CARD = "5555555555554444"

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    payment { id status confirmationUrl }
    subscription { id status }
    errors { code message field }
  }
}
"""


@pytest.fixture
def server(live_server, sandbox):
    """The live server, able to accept every simultaneous client of these tests.

    Django's test server listens with a backlog of 10: fifty clients connecting at once overflow
    it and the kernel resets some connections before the app sees them. That is a limit of the
    test server, not of the service under test, so it is raised.
    """
    live_server.thread.httpd.socket.listen(256)
    return live_server


def _in_parallel(count: int, call) -> list:
    """`call(n)` in `count` threads released together by a barrier; the answers in thread order."""
    barrier = threading.Barrier(count)

    def run(n: int):
        barrier.wait(timeout=10)
        return call(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def _subscribe_input(plan, idempotency_key: str | None) -> dict:
    return {"input": {"planId": to_base64("Plan", plan.pk), "returnUrl": RETURN_URL, "idempotencyKey": idempotency_key}}


def _pending_payload(payment: Payment) -> dict:
    """What `subscribe` answers for a payment waiting on YooKassa's page."""
    return {
        "payment": {
            "id": to_base64("Payment", payment.pk),
            "status": "PENDING",
            "confirmationUrl": payment.confirmation_url,
        },
        "subscription": {"id": to_base64("PlanSubscription", payment.subscription_id), "status": "PENDING"},
        "errors": [],
    }


def _sessions_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps showing its first snapshot of pg_stat_activity.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _distribution(answers: list[dict]) -> collections.Counter:
    """What the answers were, counted: shown when an assertion fails."""
    return collections.Counter(_shape(answer) for answer in answers)


def _shape(answer: dict) -> str:
    if "errors" in answer:
        return "errors: " + "; ".join(error["message"] for error in answer["errors"])
    payload = answer["data"]["subscribe"]
    payment = payload["payment"] or {}
    codes = [error["code"] for error in payload["errors"]]
    return f"payment {payment.get('id')} {payment.get('status')} url={bool(payment.get('confirmationUrl'))} {codes}"


def test_fifty_concurrent_subscribes_with_one_key_make_one_payment(server, sandbox, token, plan):
    client = GraphQLClient(server.url)
    variables = _subscribe_input(plan, "checkout-once")

    answers = _in_parallel(50, lambda _: client.execute(SUBSCRIBE, variables, token=token))

    payment = Payment.objects.get()
    expected = {"data": {"subscribe": _pending_payload(payment)}}
    assert answers == [expected] * 50, _distribution(answers)
    assert payment.confirmation_url.startswith(f"{sandbox.url}/checkout/")
    assert sandbox.store.count_payments() == 1
    assert Subscription.objects.count() == 1
    assert ClientRequest.objects.get().payment_id == payment.pk


def test_fifty_concurrent_subscribes_without_a_key_share_one_pending_payment(server, sandbox, token, plan):
    client = GraphQLClient(server.url)
    variables = _subscribe_input(plan, None)

    answers = _in_parallel(50, lambda _: client.execute(SUBSCRIBE, variables, token=token))

    payment = Payment.objects.get()
    expected = {"data": {"subscribe": _pending_payload(payment)}}
    assert answers == [expected] * 50, _distribution(answers)
    assert sandbox.store.count_payments() == 1
    assert Subscription.objects.count() == 1
    assert ClientRequest.objects.count() == 0


def test_twenty_concurrent_new_clicks_after_the_payment_lapsed_share_one_new_payment(server, sandbox, token, plan):
    client = GraphQLClient(server.url)
    client.execute(SUBSCRIBE, _subscribe_input(plan, "click-0"), token=token)
    lapsed = Payment.objects.get()
    sandbox.emulator.expire_payment(lapsed.provider_payment_id)
    Payment.objects.filter(pk=lapsed.pk).update(created_at=F("created_at") - timedelta(hours=1))

    answers = _in_parallel(
        20, lambda n: client.execute(SUBSCRIBE, _subscribe_input(plan, f"click-{n + 1}"), token=token)
    )

    new = Payment.objects.exclude(pk=lapsed.pk).get()
    expected = {"data": {"subscribe": _pending_payload(new)}}
    assert answers == [expected] * 20, _distribution(answers)
    assert Payment.objects.get(pk=lapsed.pk).status == PaymentStatus.CANCELED
    assert set(ClientRequest.objects.exclude(key="click-0").values_list("payment_id", flat=True)) == {new.pk}
    assert ClientRequest.objects.count() == 21
    assert sandbox.store.count_payments() == 2
    assert Subscription.objects.filter(status=SubscriptionStatus.PENDING).count() == 1


def test_a_hundred_concurrent_deliveries_of_one_notification_activate_the_subscription_once(
    server, sandbox, token, plan
):
    subscribed = GraphQLClient(server.url).execute(SUBSCRIBE, _subscribe_input(plan, "pay-then-notify"), token=token)
    pay_on_page(subscribed["data"]["subscribe"]["payment"]["confirmationUrl"], SUCCESS_CARD)
    (queued,) = sandbox.store.notifications()
    webhook_url = server.url + "/webhooks/yookassa/"

    statuses = _in_parallel(100, lambda _: requests.post(webhook_url, json=queued.body, timeout=30).status_code)

    payment = Payment.objects.select_related("subscription").get()
    subscription = payment.subscription
    outcomes = collections.Counter(YooKassaNotification.objects.values_list("outcome", flat=True))
    assert queued.event == "payment.succeeded"
    assert statuses == [200] * 100
    assert YooKassaNotification.objects.count() == 100
    assert outcomes[NotificationOutcome.PROCESSED] + outcomes[NotificationOutcome.DUPLICATE] == 100, outcomes
    assert BillingEvent.objects.filter(type="subscription.activated").count() == 1
    assert BillingEvent.objects.filter(type="payment.succeeded").count() == 1
    assert payment.status == PaymentStatus.SUCCEEDED
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.current_period_start == payment.paid_at
    assert subscription.current_period_end == plan.period.end_after(payment.paid_at)


def _assert_nothing_activated(payment: Payment) -> None:
    payment.refresh_from_db()
    subscription = Subscription.objects.get(pk=payment.subscription_id)
    assert (payment.status, payment.paid_at, payment.payment_method_id) == (PaymentStatus.PENDING, None, None)
    assert (subscription.status, subscription.current_period_end) == (SubscriptionStatus.PENDING, None)
    assert not PaymentMethod.objects.exists()
    assert not BillingEvent.objects.filter(type__in=["payment.succeeded", "subscription.activated"]).exists()


def test_twenty_concurrent_success_claims_for_a_payment_the_api_says_is_pending_activate_nothing(
    server, sandbox, token, plan
):
    GraphQLClient(server.url).execute(SUBSCRIBE, _subscribe_input(plan, "forged-success"), token=token)
    payment = Payment.objects.get()
    forged = {
        **sandbox.emulator.get_payment(payment.provider_payment_id),
        "status": "succeeded",
        "paid": True,
        "captured_at": "2025-01-01T00:00:00.000Z",
        "payment_method": {"type": "bank_card", "id": "forged-method", "saved": True, "title": "Bank card *0000"},
    }
    body = {"type": "notification", "event": "payment.succeeded", "object": forged}
    webhook_url = server.url + "/webhooks/yookassa/"

    statuses = _in_parallel(20, lambda _: requests.post(webhook_url, json=body, timeout=30).status_code)

    assert statuses == [200] * 20
    _assert_nothing_activated(payment)
    notifications = YooKassaNotification.objects.all()
    assert len(notifications) == 20
    assert {(n.outcome, n.detail) for n in notifications} == {
        (NotificationOutcome.PROCESSED, f"Payment {payment.id} is pending.")
    }


def test_a_real_notification_from_an_untrusted_address_is_rejected_and_counted(server, sandbox, settings, token, plan):
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS  # loopback is not YooKassa
    subscribed = GraphQLClient(server.url).execute(SUBSCRIBE, _subscribe_input(plan, "untrusted"), token=token)
    pay_on_page(subscribed["data"]["subscribe"]["payment"]["confirmationUrl"], SUCCESS_CARD)
    (queued,) = sandbox.store.notifications()
    payment = Payment.objects.get()
    body = json.dumps(queued.body).encode()

    response = requests.post(
        server.url + "/webhooks/yookassa/", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )

    assert response.status_code == 403
    _assert_nothing_activated(payment)
    assert not YooKassaNotification.objects.exists()
    tally = UntrustedNotificationTally.objects.get()
    assert (tally.source_network, tally.sample_remote_addr) == ("127.0.0.1/32", "127.0.0.1")
    assert (tally.received, tally.over_limit, tally.bytes_received) == (1, 0, len(body))
    assert tally.sample_body == body[:1024].decode()


@pytest.mark.parametrize(
    ("forwarded_for", "status", "source"),
    [("185.71.76.1", 200, "185.71.76.1"), ("185.71.76.1, 8.8.8.8", 403, "8.8.8.8")],
    ids=["from-yookassa-through-the-proxy", "forged-hop-left-of-the-real-one"],
)
def test_behind_a_trusted_proxy_only_the_hop_it_saw_counts(
    server, sandbox, settings, token, plan, forwarded_for, status, source
):
    settings.YOOKASSA_TRUSTED_NETWORKS = settings.YOOKASSA_PUBLISHED_NETWORKS
    settings.YOOKASSA_TRUSTED_PROXIES = ["127.0.0.0/8"]  # the live server's clients come through loopback
    subscribed = GraphQLClient(server.url).execute(SUBSCRIBE, _subscribe_input(plan, "via-proxy"), token=token)
    pay_on_page(subscribed["data"]["subscribe"]["payment"]["confirmationUrl"], SUCCESS_CARD)
    (queued,) = sandbox.store.notifications()

    response = requests.post(
        server.url + "/webhooks/yookassa/", json=queued.body, headers={"X-Forwarded-For": forwarded_for}, timeout=30
    )

    payment = Payment.objects.get()
    assert response.status_code == status
    if status == 200:
        notification = YooKassaNotification.objects.get()
        assert (notification.remote_addr, notification.trusted_source) == (source, True)
    else:
        assert not YooKassaNotification.objects.exists()
        tally = UntrustedNotificationTally.objects.get()
        assert (tally.sample_remote_addr, tally.received) == (source, 1)
    assert payment.status == (PaymentStatus.SUCCEEDED if status == 200 else PaymentStatus.PENDING)


@pytest.mark.parametrize("idempotency_key", ["checkout-after-timeout", None], ids=["same key", "no key"])
def test_a_retry_after_a_gateway_timeout_gets_the_same_payment(server, sandbox, settings, token, plan, idempotency_key):
    settings.YOOKASSA_READ_TIMEOUT = 0.5
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.5))
    client = GraphQLClient(server.url)
    variables = _subscribe_input(plan, idempotency_key)

    timed_out = client.execute(SUBSCRIBE, variables, token=token)["data"]["subscribe"]
    retried = client.execute(SUBSCRIBE, variables, token=token)["data"]["subscribe"]

    payment = Payment.objects.get()
    assert timed_out == {
        "payment": {"id": to_base64("Payment", payment.pk), "status": "CREATING", "confirmationUrl": None},
        "subscription": {"id": to_base64("PlanSubscription", payment.subscription_id), "status": "PENDING"},
        "errors": [
            {
                "code": "PROVIDER_OUTCOME_UNKNOWN",
                "message": "YooKassa did not answer in time; the request may have been carried out.",
                "field": None,
            }
        ],
    }
    assert retried == _pending_payload(payment)
    assert payment.confirmation_url.startswith(f"{sandbox.url}/checkout/")
    assert sandbox.store.count_payments() == 1


def test_two_viewers_subscribing_at_once_both_get_their_own_payment(server, sandbox, plan):
    client = GraphQLClient(server.url)
    tokens = [make_token(uuid.uuid4(), f"viewer{n}@example.com") for n in range(2)]
    # The same key on purpose: keys are unique per viewer, never across viewers.
    variables = _subscribe_input(plan, "same-key-different-viewers")

    answers = _in_parallel(2, lambda n: client.execute(SUBSCRIBE, variables, token=tokens[n]))

    payments = Payment.objects.all()
    expected = [{"data": {"subscribe": _pending_payload(payment)}} for payment in payments]
    assert sorted(answers, key=repr) == sorted(expected, key=repr)
    assert len({payment.viewer_id for payment in payments}) == 2
    assert sandbox.store.count_payments() == 2


def test_a_viewer_whose_checkout_is_held_up_does_not_hold_up_another(server, sandbox, plan):
    client = GraphQLClient(server.url)
    held_viewer, other_viewer = uuid.uuid4(), uuid.uuid4()
    variables = _subscribe_input(plan, None)

    with ThreadPoolExecutor(max_workers=1) as pool, transaction.atomic():
        # Another session is creating the held viewer's subscription and has not committed yet.
        Subscription.objects.create(viewer_id=held_viewer, plan=plan, status=SubscriptionStatus.PENDING)
        held = pool.submit(client.execute, SUBSCRIBE, variables, token=make_token(held_viewer))
        eventually(lambda: _sessions_waiting_for_a_lock() == 1)
        other = client.execute(SUBSCRIBE, variables, token=make_token(other_viewer))
        held_was_waiting = not held.done() and _sessions_waiting_for_a_lock() == 1
        transaction.set_rollback(True)
    held = held.result(timeout=10)

    held_payment = Payment.objects.get(viewer_id=held_viewer)
    other_payment = Payment.objects.get(viewer_id=other_viewer)
    assert other == {"data": {"subscribe": _pending_payload(other_payment)}}
    assert held_was_waiting is True
    assert held == {"data": {"subscribe": _pending_payload(held_payment)}}
    assert sandbox.store.count_payments() == 2
