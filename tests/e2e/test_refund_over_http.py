"""The acceptance test of cancellation and refunds, as a frontend does it: over real HTTP.

The viewer subscribes and pays on the sandbox's page; the sandbox delivers its notifications
(payment.succeeded, refund.succeeded) to the live server's webhook. Nothing here calls billing's
code: the quote, the cancellation and what `me` and `payment(id)` show afterwards all come
through GraphQL with the viewer's bearer token.
"""

import uuid

import pytest

from billing.models import BillingEvent
from sandbox.emulator import RefundOutcome
from sandbox.faults import NotificationEffect, NotificationFault
from tests.helpers import GraphQLClient, eventually, pay_on_page
from webhooks.models import NotificationOutcome, YooKassaNotification

pytestmark = pytest.mark.django_db(transaction=True)

RETURN_URL = "https://cinema.example/return"
SUCCESS_CARD = "5555555555554444"

PLANS = """
query { plans { id code } }
"""

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    payment { id status confirmationUrl }
    subscription { id status }
    errors { code message field }
  }
}
"""

ME = """
query {
  me { activeSubscription { id status currentPeriodEnd autoRenew cancelAtPeriodEnd } }
}
"""

REFUND_QUOTE = """
query Quote($subscriptionId: ID!) {
  refundQuote(subscriptionId: $subscriptionId) { amount { amount currency } rule periodEnd refundable }
}
"""

CANCEL = """
mutation Cancel($input: CancelSubscriptionInput!) {
  cancelSubscription(input: $input) {
    subscription { id status autoRenew cancelAtPeriodEnd }
    refund { id status amount { amount currency } }
    errors { code message field }
  }
}
"""

SUBSCRIPTIONS = """
query { me { subscriptions { id status } } }
"""

PAYMENT = """
query Payment($id: ID!) {
  payment(id: $id) {
    refundedAmount { amount currency }
    refunds { id status amount { amount currency } }
  }
}
"""


@pytest.fixture
def frontend(live_server, sandbox) -> GraphQLClient:
    """A cinema client talking to the live server, whose webhook the sandbox notifies."""
    sandbox.config.notification_url = live_server.url + "/webhooks/yookassa/"
    return GraphQLClient(live_server.url)


@pytest.fixture
def subscribed(frontend, sandbox, token, plans) -> dict:
    """Basic (299.00 RUB a month), subscribed and paid on the page; `me` shows it active."""
    basic = next(plan for plan in frontend.execute(PLANS)["data"]["plans"] if plan["code"] == "basic-monthly")
    answer = frontend.execute(
        SUBSCRIBE,
        {"input": {"planId": basic["id"], "returnUrl": RETURN_URL, "idempotencyKey": str(uuid.uuid4())}},
        token=token,
    )["data"]["subscribe"]
    assert answer["errors"] == []
    pay_on_page(answer["payment"]["confirmationUrl"], SUCCESS_CARD)
    active = eventually(lambda: _active_subscription(frontend, token), timeout=1.0)
    assert active["id"] == answer["subscription"]["id"]
    # The webhook's request goes on after its commit (the emails it sends); on SQLite the live
    # server's threads share one connection, so the next request waits for it to finish.
    assert sandbox.notifier.wait_idle(timeout=10), "the payment's notification was still being answered"
    return {
        "subscription": active,
        "payment_id": answer["payment"]["id"],
        "provider_payment_id": answer["payment"]["confirmationUrl"].rsplit("/", 1)[1],
    }


def _active_subscription(frontend: GraphQLClient, token: str) -> dict | None:
    return frontend.execute(ME, token=token)["data"]["me"]["activeSubscription"]


def _refund_notifications_answered(sandbox) -> list[str]:
    """The outcomes of the sandbox's refund.succeeded notifications, once the live server answered them all."""
    queued = [n for n in sandbox.store.notifications() if n.event == "refund.succeeded"]
    if not queued or any(n.state != "delivered" for n in queued):
        return []
    return list(YooKassaNotification.objects.filter(event="refund.succeeded").values_list("outcome", flat=True))


def _cancel(frontend: GraphQLClient, token: str, subscription_id: str, mode: str, key: str | None) -> dict:
    variables = {"input": {"subscriptionId": subscription_id, "mode": mode, "idempotencyKey": key}}
    return frontend.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]


def test_a_viewer_cancels_on_day_zero_and_gets_everything_back(frontend, sandbox, token, subscribed):
    subscription = subscribed["subscription"]
    # The sandbox's refund.succeeded is held until the mutation has answered, as from YooKassa it
    # usually comes after (their race is a test of tests/concurrency; on SQLite the live server's
    # threads share one connection and could not run it). A fixed delay was not enough on a busy
    # machine, where the mutation can take longer than any delay chosen.
    sandbox.faults.add(NotificationFault(NotificationEffect.REORDER, event="refund.succeeded", hold=2))
    quote = frontend.execute(REFUND_QUOTE, {"subscriptionId": subscription["id"]}, token=token)["data"]

    canceled = _cancel(frontend, token, subscription["id"], "NOW_WITH_REFUND", "cancel-now-1")
    # Clearing the fault releases the held notification.
    sandbox.faults.clear()

    assert quote == {
        "refundQuote": {
            "amount": {"amount": "299.00", "currency": "RUB"},
            "rule": "FULL",
            "periodEnd": subscription["currentPeriodEnd"],
            "refundable": True,
        }
    }
    assert canceled["errors"] == []
    assert canceled["refund"]["status"] == "SUCCEEDED"
    assert canceled["refund"]["amount"] == {"amount": "299.00", "currency": "RUB"}
    assert canceled["subscription"] == {
        "id": subscription["id"],
        "status": "CANCELED",
        "autoRenew": False,
        "cancelAtPeriodEnd": False,
    }
    [provider_refund] = sandbox.store.refunds_of_payment(subscribed["provider_payment_id"])
    assert provider_refund["status"] == "succeeded"
    assert provider_refund["amount"] == {"value": "299.00", "currency": "RUB"}
    assert sandbox.store.count_refunds() == 1
    assert eventually(lambda: _refund_notifications_answered(sandbox), timeout=1.0) == [NotificationOutcome.DUPLICATE]
    assert BillingEvent.objects.filter(type="refund.succeeded").count() == 1
    assert BillingEvent.objects.filter(type="subscription.canceled").count() == 1
    assert frontend.execute(ME, token=token) == {"data": {"me": {"activeSubscription": None}}}
    assert frontend.execute(PAYMENT, {"id": subscribed["payment_id"]}, token=token) == {
        "data": {
            "payment": {
                "refundedAmount": {"amount": "299.00", "currency": "RUB"},
                "refunds": [canceled["refund"]],
            }
        }
    }


def test_canceling_at_the_period_end_keeps_access_and_refunds_nothing(frontend, sandbox, token, subscribed):
    subscription = subscribed["subscription"]

    canceled = _cancel(frontend, token, subscription["id"], "AT_PERIOD_END", "cancel-later-1")

    expected = {"id": subscription["id"], "status": "ACTIVE", "autoRenew": False, "cancelAtPeriodEnd": True}
    assert subscription["autoRenew"] is True
    assert canceled == {"subscription": expected, "refund": None, "errors": []}
    assert _active_subscription(frontend, token) == {**expected, "currentPeriodEnd": subscription["currentPeriodEnd"]}
    assert sandbox.store.count_refunds() == 0
    assert frontend.execute(PAYMENT, {"id": subscribed["payment_id"]}, token=token) == {
        "data": {"payment": {"refundedAmount": {"amount": "0.00", "currency": "RUB"}, "refunds": []}}
    }


def test_a_refund_left_pending_ends_the_subscription_when_its_notification_comes(frontend, sandbox, token, subscribed):
    subscription = subscribed["subscription"]
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    canceled = _cancel(frontend, token, subscription["id"], "NOW_WITH_REFUND", "cancel-now-pending")
    [provider_refund] = sandbox.store.refunds_of_payment(subscribed["provider_payment_id"])
    still_active = _active_subscription(frontend, token)

    sandbox.emulator.settle_refund(provider_refund["id"], "succeeded")

    assert canceled["errors"] == []
    assert canceled["refund"]["status"] == "PENDING"
    assert canceled["refund"]["amount"] == {"amount": "299.00", "currency": "RUB"}
    assert canceled["subscription"]["status"] == "ACTIVE"
    assert provider_refund["status"] == "pending"
    assert still_active["status"] == "ACTIVE"
    assert eventually(lambda: _active_subscription(frontend, token) is None, timeout=1.0) is True
    assert frontend.execute(SUBSCRIPTIONS, token=token)["data"]["me"]["subscriptions"] == [
        {"id": subscription["id"], "status": "CANCELED"}
    ]
    payment = frontend.execute(PAYMENT, {"id": subscribed["payment_id"]}, token=token)["data"]["payment"]
    assert payment == {
        "refundedAmount": {"amount": "299.00", "currency": "RUB"},
        "refunds": [{**canceled["refund"], "status": "SUCCEEDED"}],
    }
    assert eventually(lambda: _refund_notifications_answered(sandbox), timeout=1.0) == [NotificationOutcome.PROCESSED]
    [settled] = sandbox.store.refunds_of_payment(subscribed["provider_payment_id"])
    assert settled["status"] == "succeeded"
    assert sandbox.store.count_refunds() == 1
