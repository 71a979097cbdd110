"""A frozen Redis (it accepts connections and never answers) as the cache and the channel layer,
configured as in production: what a viewer or YooKassa asks still answers within a second, and
changes what it should. The after-commit listeners (the live hint, mail's debounce) run for real.
"""

import json
import time
import uuid

import pytest
from django.test import Client
from strawberry.relay import to_base64

from billing.models import BillingEvent, Payment, PaymentStatus, Refund, RefundStatus, SubscriptionStatus
from config.settings import base
from mail import receivers
from tests.frozen_redis import FrozenRedis
from tests.helpers import SUCCESS_CARD, pay_on_page, start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

ANSWERS_WITHIN = 1.0
WEBHOOK_URL = "/webhooks/yookassa/"
SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) { payment { id status } subscription { status } errors { code message } }
}
"""
CANCEL = """
mutation Cancel($input: CancelSubscriptionInput!) {
  cancelSubscription(input: $input) { subscription { status } refund { status } errors { code message } }
}
"""


@pytest.fixture
def frozen_redis(settings, monkeypatch):
    """Production's Redis clients pointed at a frozen Redis; mail's debounce has not yet seen it fail."""
    with FrozenRedis() as frozen:
        settings.CHANNEL_LAYERS = base.redis_channel_layers(frozen.url)
        settings.CACHES = base.redis_caches(frozen.url)
        monkeypatch.setattr(receivers, "_debounce", receivers._Debounce())
        yield frozen


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_subscribe_answers_within_a_second_with_redis_frozen(graphql, token, plan, sandbox, frozen_redis):
    variables = {
        "input": {
            "planId": to_base64("Plan", plan.pk),
            "returnUrl": "https://cinema.example/return",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }

    answer, took = _timed(lambda: graphql.execute(SUBSCRIBE, variables, token=token))

    assert took < ANSWERS_WITHIN
    payload = answer["data"]["subscribe"]
    assert payload["errors"] == []
    assert payload["payment"]["status"] == "PENDING"
    assert payload["subscription"]["status"] == "PENDING"
    assert Payment.objects.filter(status=PaymentStatus.PENDING).count() == 1
    assert frozen_redis.connections, "the listeners never tried Redis"


def test_cancel_with_refund_answers_within_a_second_with_redis_frozen(graphql, token, active, frozen_redis):
    variables = {
        "input": {
            "subscriptionId": to_base64("PlanSubscription", active.pk),
            "mode": "NOW_WITH_REFUND",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }

    answer, took = _timed(lambda: graphql.execute(CANCEL, variables, token=token))

    assert took < ANSWERS_WITHIN
    assert answer["data"]["cancelSubscription"] == {
        "subscription": {"status": "CANCELED"},
        "refund": {"status": "SUCCEEDED"},
        "errors": [],
    }
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.CANCELED
    assert Refund.objects.get(payment__subscription=active).status == RefundStatus.SUCCEEDED
    assert frozen_redis.connections, "the listeners never tried Redis"


def test_the_yookassa_webhook_answers_within_a_second_with_redis_frozen(viewer, plan, sandbox, frozen_redis):
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, SUCCESS_CARD)
    notification = {
        "type": "notification",
        "event": "payment.succeeded",
        "object": sandbox.emulator.get_payment(payment.provider_payment_id),
    }

    body = json.dumps(notification)

    response, took = _timed(
        lambda: Client().post(WEBHOOK_URL, data=body, content_type="application/json", REMOTE_ADDR="127.0.0.1")
    )

    assert took < ANSWERS_WITHIN
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.subscription.status == SubscriptionStatus.ACTIVE
    assert BillingEvent.objects.filter(payment=payment, type="payment.succeeded").count() == 1
    assert frozen_redis.connections, "the listeners never tried Redis"
