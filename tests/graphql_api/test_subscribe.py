"""The `subscribe` mutation: payload shape, typed errors, and that errors change nothing."""

import pytest
from strawberry.relay import to_base64

from billing.models import Payment, Subscription

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    payment { id status kind confirmationUrl amount { amount currency } }
    subscription { id status plan { code } currentPeriodEnd }
    errors { code message field }
  }
}
"""


def subscribe(graphql, token, **fields):
    variables = {"input": {"returnUrl": "https://cinema.example/return", **fields}}
    return graphql.execute(SUBSCRIBE, variables, token=token)


def test_subscribe_returns_the_payment_to_confirm(graphql, token, plan, sandbox):
    answer = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-1")

    payload = answer["data"]["subscribe"]
    assert payload["errors"] == []
    assert payload["payment"]["status"] == "PENDING"
    assert payload["payment"]["kind"] == "INITIAL"
    assert payload["payment"]["amount"] == {"amount": "299.00", "currency": "RUB"}
    assert payload["payment"]["confirmationUrl"].startswith(f"{sandbox.url}/checkout/")
    assert payload["subscription"] == {
        "id": payload["subscription"]["id"],
        "status": "PENDING",
        "plan": {"code": "basic-monthly"},
        "currentPeriodEnd": None,
    }


def test_a_repeat_with_the_key_returns_the_same_payment(graphql, token, plan, sandbox):
    first = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-1")

    again = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-1")

    assert again["data"]["subscribe"]["payment"]["id"] == first["data"]["subscribe"]["payment"]["id"]
    assert sandbox.store.count_payments() == 1


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"planId": to_base64("Plan", 999_999)}, "PLAN_NOT_FOUND", "planId"),
        ({"planId": to_base64("Payment", 1)}, "INVALID_INPUT", "planId"),
        ({"returnUrl": "https://evil.example/"}, "INVALID_RETURN_URL", "returnUrl"),
        ({"idempotencyKey": "k" * 129}, "INVALID_INPUT", "idempotencyKey"),
        # PostgreSQL cannot store NUL: refused before the database is asked, not "Unexpected error".
        ({"idempotencyKey": "k-1\x00"}, "INVALID_INPUT", "idempotencyKey"),
        ({"returnUrl": "https://cinema.example/return\x00"}, "INVALID_RETURN_URL", "returnUrl"),
        ({"returnUrl": "https://evil.example\\.cinema.example/"}, "INVALID_RETURN_URL", "returnUrl"),
        # "²".isdigit() is true, and int("²") fails.
        ({"planId": to_base64("Plan", "\u00b2")}, "INVALID_INPUT", "planId"),
        ({"planId": to_base64("Plan", "1\x00")}, "INVALID_INPUT", "planId"),
        ({"planId": to_base64("Plan", "9" * 40)}, "PLAN_NOT_FOUND", "planId"),
    ],
)
def test_bad_input_gets_a_typed_error_and_changes_nothing(graphql, token, plan, sandbox, fields, code, field):
    answer = subscribe(graphql, token, **({"planId": to_base64("Plan", plan.pk)} | fields))

    payload = answer["data"]["subscribe"]
    assert payload["payment"] is None
    assert payload["subscription"] is None
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [(code, field)]
    assert payload["errors"][0]["message"]
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert sandbox.store.count_payments() == 0


def test_reusing_a_key_for_another_request_is_an_error(graphql, token, plans):
    subscribe(graphql, token, planId=to_base64("Plan", plans["basic-monthly"].pk), idempotencyKey="k-1")

    answer = subscribe(graphql, token, planId=to_base64("Plan", plans["premium-monthly"].pk), idempotencyKey="k-1")

    assert answer["data"]["subscribe"]["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert Payment.objects.count() == 1


def test_an_unreachable_yookassa_is_reported_with_the_payment_that_will_be_finished(graphql, token, plan, sandbox):
    from sandbox.faults import ApiEffect, ApiFault

    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="payments.create", applied=False))

    answer = subscribe(graphql, token, planId=to_base64("Plan", plan.pk))

    payload = answer["data"]["subscribe"]
    assert [error["code"] for error in payload["errors"]] == ["PROVIDER_OUTCOME_UNKNOWN"]
    assert payload["payment"]["status"] == "CREATING"
    assert payload["payment"]["confirmationUrl"] is None


def test_a_timeout_at_yookassa_is_an_unknown_outcome_and_a_retry_with_the_same_key_makes_one_payment(
    graphql, token, plan, sandbox, settings
):
    from sandbox.faults import ApiEffect, ApiFault

    # given YooKassa answers after the service stopped waiting (the payment is made there)
    settings.YOOKASSA_READ_TIMEOUT = 0.3
    sandbox.faults.add(ApiFault(ApiEffect.SLOW, kind="payments.create", delay=1.0))

    # when the viewer subscribes, then retries with the same key
    timed_out = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-timeout")
    retried = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-timeout")

    # then the first answer says "may have happened, retry with the same key", with the payment
    first = timed_out["data"]["subscribe"]
    payment = Payment.objects.get()
    assert [error["code"] for error in first["errors"]] == ["PROVIDER_OUTCOME_UNKNOWN"]
    assert first["payment"]["id"] == to_base64("Payment", payment.pk)
    assert first["payment"]["status"] == "CREATING"
    assert first["subscription"]["status"] == "PENDING"
    # and the retry is the same payment, the only one at YooKassa
    second = retried["data"]["subscribe"]
    assert second["errors"] == []
    assert second["payment"]["id"] == first["payment"]["id"]
    assert second["payment"]["status"] == "PENDING"
    assert sandbox.store.count_payments() == 1


def test_a_rate_limit_at_yookassa_is_unavailable_with_the_payment_to_retry(graphql, token, plan, sandbox):
    from sandbox.faults import ApiEffect, ApiFault

    # given YooKassa refuses to be asked now (nothing is done there)
    sandbox.faults.add(ApiFault(ApiEffect.ERROR_429, kind="payments.create"))

    # when the viewer subscribes
    answer = subscribe(graphql, token, planId=to_base64("Plan", plan.pk), idempotencyKey="k-429")

    # then it is PROVIDER_UNAVAILABLE, with the payment that a retry finishes
    payload = answer["data"]["subscribe"]
    assert [error["code"] for error in payload["errors"]] == ["PROVIDER_UNAVAILABLE"]
    assert payload["payment"]["status"] == "CREATING"
    assert sandbox.store.count_payments() == 0
