"""The acceptance test of checkout, as a frontend does it: over real HTTP, against the running app.

The sandbox YooKassa delivers its notifications to the live server's webhook, so nothing here
calls billing's code directly: plans -> subscribe -> the payment page -> back to the cinema ->
`me` shows the subscription.
"""

import uuid
from datetime import datetime

import pytest
import requests

from tests.helpers import GraphQLClient, eventually, pay_on_page

pytestmark = pytest.mark.django_db(transaction=True)

RETURN_URL = "https://cinema.example/return"
SUCCESS_CARD = "5555555555554444"
INSUFFICIENT_FUNDS_CARD = "5555555555554600"

PLANS = """
query {
  plans { id code name price { amount currency } period { unit count } }
}
"""

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    payment { id status confirmationUrl amount { amount currency } }
    subscription { id status plan { code } }
    errors { code message field }
  }
}
"""

ME = """
query {
  me {
    activeSubscription { status currentPeriodStart currentPeriodEnd plan { code } }
  }
}
"""

PAYMENT = """
query Payment($id: ID!) {
  payment(id: $id) { status cancellationReason }
}
"""


@pytest.fixture
def frontend(live_server, sandbox) -> GraphQLClient:
    """A cinema client talking to the live server, whose webhook the sandbox notifies."""
    sandbox.config.notification_url = live_server.url + "/webhooks/yookassa/"
    return GraphQLClient(live_server.url)


def _subscribe_to_basic(frontend: GraphQLClient, token: str) -> dict:
    catalog = frontend.execute(PLANS)["data"]["plans"]
    basic = next(plan for plan in catalog if plan["code"] == "basic-monthly")
    answer = frontend.execute(
        SUBSCRIBE,
        {"input": {"planId": basic["id"], "returnUrl": RETURN_URL, "idempotencyKey": str(uuid.uuid4())}},
        token=token,
    )
    return answer["data"]["subscribe"]


def _payment_if_canceled(frontend: GraphQLClient, token: str, payment_id: str) -> dict | None:
    payment = frontend.execute(PAYMENT, {"id": payment_id}, token=token)["data"]["payment"]
    return payment if payment["status"] == "CANCELED" else None


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_viewer_pays_on_the_payment_page_and_is_subscribed_within_a_second(frontend, sandbox, token, plan):
    subscribed = _subscribe_to_basic(frontend, token)
    confirmation_url = subscribed["payment"]["confirmationUrl"]
    page = requests.get(confirmation_url, timeout=5)

    answer = pay_on_page(confirmation_url, SUCCESS_CARD)

    assert subscribed["errors"] == []
    assert subscribed["payment"]["status"] == "PENDING"
    assert subscribed["payment"]["amount"] == {"amount": "299.00", "currency": "RUB"}
    assert subscribed["subscription"]["status"] == "PENDING"
    assert subscribed["subscription"]["plan"] == {"code": "basic-monthly"}
    assert page.status_code == 200
    assert "299.00" in page.text
    assert answer.status_code == 303
    assert answer.headers["Location"] == RETURN_URL
    active = eventually(lambda: frontend.execute(ME, token=token)["data"]["me"]["activeSubscription"], timeout=1.0)
    provider_payment = sandbox.emulator.get_payment(confirmation_url.rsplit("/", 1)[1])
    captured_at = _moment(provider_payment["captured_at"])
    assert provider_payment["status"] == "succeeded"
    assert active["status"] == "ACTIVE"
    assert active["plan"] == {"code": "basic-monthly"}
    assert _moment(active["currentPeriodStart"]) == captured_at
    assert _moment(active["currentPeriodEnd"]) == plan.period.end_after(captured_at)


def test_a_declined_card_leaves_the_viewer_without_a_subscription(frontend, token, plans):
    subscribed = _subscribe_to_basic(frontend, token)
    payment_id = subscribed["payment"]["id"]

    answer = pay_on_page(subscribed["payment"]["confirmationUrl"], INSUFFICIENT_FUNDS_CARD)

    assert answer.status_code == 303
    assert answer.headers["Location"] == RETURN_URL
    canceled = eventually(lambda: _payment_if_canceled(frontend, token, payment_id), timeout=1.0)
    assert canceled == {"status": "CANCELED", "cancellationReason": "insufficient_funds"}
    assert frontend.execute(ME, token=token) == {"data": {"me": {"activeSubscription": None}}}
