"""refundQuote and cancelSubscription over GraphQL: typed errors, and errors change nothing."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from strawberry.relay import to_base64

from billing import clock
from billing.models import Refund, RefundStatus, SubscriptionStatus
from sandbox.emulator import RefundOutcome
from tests.helpers import billing_and_sandbox_at, make_token, subscribe_and_pay_at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

QUOTE = "query($id: ID!) { refundQuote(subscriptionId: $id) { amount { amount currency } rule periodEnd refundable } }"
QUOTE_DAYS = (
    "query($id: ID!) { refundQuote(subscriptionId: $id) { amount { amount } rule refundable periodDays unusedDays } }"
)
PAID_ON_1_MARCH = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CANCEL = """
mutation($input: CancelSubscriptionInput!) {
  cancelSubscription(input: $input) {
    subscription { status cancelAtPeriodEnd autoRenew canceledAt }
    refund { status amount { amount currency } }
    errors { code field message }
  }
}
"""


@pytest.fixture
def thirty_days_paid_on_1_march(viewer, plans, sandbox):
    """Basic billed every 30 days, paid on 1 March 2026 at noon (UTC) on both clocks."""
    plan = plans["basic-monthly"]
    plan.period_unit, plan.period_count = "day", 30
    plan.save()
    return subscribe_and_pay_at(PAID_ON_1_MARCH, viewer, plan, sandbox)


def cancel(graphql, token, subscription_id, mode="NOW_WITH_REFUND", key=None):
    variables = {"input": {"subscriptionId": subscription_id, "mode": mode, "idempotencyKey": key}}
    return graphql.execute(CANCEL, variables, token=token)["data"]["cancelSubscription"]


def test_the_quote_on_day_zero_is_everything(graphql, token, active):
    answer = graphql.execute(QUOTE, {"id": to_base64("PlanSubscription", active.pk)}, token=token)

    assert answer["data"]["refundQuote"] == {
        "amount": {"amount": "299.00", "currency": "RUB"},
        "rule": "FULL",
        "periodEnd": active.current_period_end.isoformat(),
        "refundable": True,
    }


def test_the_quote_on_the_last_day_is_nothing(graphql, token, active):
    with clock.moved_to(active.current_period_end - timedelta(hours=1)):
        answer = graphql.execute(QUOTE, {"id": to_base64("PlanSubscription", active.pk)}, token=token)

    assert answer["data"]["refundQuote"]["rule"] == "NOTHING_LEFT"
    assert answer["data"]["refundQuote"]["refundable"] is False


def test_someone_elses_subscription_has_no_quote(graphql, active):
    answer = graphql.execute(QUOTE, {"id": to_base64("PlanSubscription", active.pk)}, token=make_token(uuid.uuid4()))

    assert answer == {"data": {"refundQuote": None}}


def test_cancel_now_with_refund(graphql, token, active):
    payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk))

    assert payload["errors"] == []
    assert payload["refund"] == {"status": "SUCCEEDED", "amount": {"amount": "299.00", "currency": "RUB"}}
    assert payload["subscription"]["status"] == "CANCELED"
    assert payload["subscription"]["autoRenew"] is False
    assert graphql.execute("{ me { activeSubscription { id } } }", token=token)["data"]["me"] == {
        "activeSubscription": None
    }


def test_the_payment_shows_its_refunds(graphql, token, active):
    cancel(graphql, token, to_base64("PlanSubscription", active.pk))
    payment = active.payments.get()

    answer = graphql.execute(
        "query($id: ID!) { payment(id: $id) { refundedAmount { amount } refunds { status amount { amount } } } }",
        {"id": to_base64("Payment", payment.pk)},
        token=token,
    )

    assert answer["data"]["payment"] == {
        "refundedAmount": {"amount": "299.00"},
        "refunds": [{"status": "SUCCEEDED", "amount": {"amount": "299.00"}}],
    }


def test_cancel_at_period_end(graphql, token, active):
    payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk), mode="AT_PERIOD_END")

    assert payload["errors"] == []
    assert payload["refund"] is None
    assert payload["subscription"]["status"] == "ACTIVE"
    assert payload["subscription"]["cancelAtPeriodEnd"] is True
    assert payload["subscription"]["canceledAt"] is not None


@pytest.mark.parametrize(
    ("subscription_id", "code"),
    [
        (lambda active: to_base64("PlanSubscription", uuid.uuid4()), "NOT_FOUND"),
        (lambda active: to_base64("Payment", active.pk), "NOT_FOUND"),
        (lambda active: "not a relay id at all", None),
    ],
)
def test_a_wrong_id_is_not_found_and_changes_nothing(graphql, token, active, subscription_id, code):
    answer = graphql.execute(
        CANCEL, {"input": {"subscriptionId": subscription_id(active), "mode": "NOW_WITH_REFUND"}}, token=token
    )

    if code is None:
        assert answer["errors"]
    else:
        payload = answer["data"]["cancelSubscription"]
        assert [(error["code"], error["field"]) for error in payload["errors"]] == [(code, "subscriptionId")]
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0


@pytest.mark.parametrize("mode", ["NOW_WITH_REFUND", "AT_PERIOD_END"])
def test_a_key_with_a_nul_is_invalid_input_and_changes_nothing(graphql, token, active, mode):
    payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk), mode=mode, key="cancel\x00-1")

    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("INVALID_INPUT", "idempotencyKey")]
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert active.cancel_at_period_end is False
    assert Refund.objects.count() == 0


@pytest.mark.parametrize(
    "node_id", [lambda active: f"{active.pk}\x00", lambda active: "\x00", lambda active: f"{active.pk}\u200b"]
)
def test_an_id_with_control_characters_is_not_found(graphql, token, active, node_id):
    subscription_id = to_base64("PlanSubscription", node_id(active))

    payload = cancel(graphql, token, subscription_id)

    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("NOT_FOUND", "subscriptionId")]
    assert Refund.objects.count() == 0


def test_another_viewers_subscription_is_not_found(graphql, active):
    payload = cancel(graphql, make_token(uuid.uuid4()), to_base64("PlanSubscription", active.pk))

    assert [error["code"] for error in payload["errors"]] == ["NOT_FOUND"]
    assert Refund.objects.count() == 0


def test_on_the_last_day_the_refund_is_refused_and_nothing_changes(graphql, token, active, sandbox):
    with clock.moved_to(active.current_period_end - timedelta(hours=1)):
        payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk))

    assert [error["code"] for error in payload["errors"]] == ["NOT_REFUNDABLE"]
    assert payload["subscription"] is None
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert sandbox.store.count_refunds() == 0


def test_canceling_twice_is_already_canceled(graphql, token, active):
    cancel(graphql, token, to_base64("PlanSubscription", active.pk))

    payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk))

    assert [error["code"] for error in payload["errors"]] == ["ALREADY_CANCELED"]


def test_an_unreachable_yookassa_is_reported_with_the_refund_that_will_be_finished(graphql, token, active, sandbox):
    from sandbox.faults import ApiEffect, ApiFault

    sandbox.faults.add(ApiFault(ApiEffect.ERROR_500, kind="refunds.create", applied=False))

    payload = cancel(graphql, token, to_base64("PlanSubscription", active.pk), key="k-1")

    assert [error["code"] for error in payload["errors"]] == ["PROVIDER_OUTCOME_UNKNOWN"]
    assert payload["refund"]["status"] == "CREATING"
    assert payload["subscription"]["status"] == "ACTIVE"
    again = cancel(graphql, token, to_base64("PlanSubscription", active.pk), key="k-1")
    assert again["refund"]["status"] == "SUCCEEDED"
    assert again["subscription"]["status"] == "CANCELED"
    assert sandbox.store.count_refunds() == 1


def test_the_quote_shows_the_days_of_the_period_and_the_unused_ones(
    graphql, token, thirty_days_paid_on_1_march, sandbox
):
    subscription_id = to_base64("PlanSubscription", thirty_days_paid_on_1_march.pk)

    with billing_and_sandbox_at(PAID_ON_1_MARCH + timedelta(days=10), sandbox):
        answer = graphql.execute(QUOTE_DAYS, {"id": subscription_id}, token=token)

    assert answer["data"]["refundQuote"] == {
        "amount": {"amount": "189.36"},
        "rule": "PRO_RATA",
        "refundable": True,
        "periodDays": 30,
        "unusedDays": 19,
    }


def test_after_canceling_with_a_refund_the_quote_offers_nothing(graphql, token, thirty_days_paid_on_1_march, sandbox):
    subscription_id = to_base64("PlanSubscription", thirty_days_paid_on_1_march.pk)

    with billing_and_sandbox_at(PAID_ON_1_MARCH + timedelta(days=10), sandbox):
        canceled = cancel(graphql, token, subscription_id)
        answer = graphql.execute(QUOTE_DAYS, {"id": subscription_id}, token=token)

    assert canceled["refund"] == {"status": "SUCCEEDED", "amount": {"amount": "189.36", "currency": "RUB"}}
    assert answer["data"]["refundQuote"] == {
        "amount": {"amount": "0.00"},
        "rule": "NOTHING_LEFT",
        "refundable": False,
        "periodDays": 0,
        "unusedDays": 0,
    }


def test_while_the_refund_is_pending_the_quote_offers_nothing(graphql, token, thirty_days_paid_on_1_march, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    subscription_id = to_base64("PlanSubscription", thirty_days_paid_on_1_march.pk)

    with billing_and_sandbox_at(PAID_ON_1_MARCH + timedelta(days=10), sandbox):
        pending = cancel(graphql, token, subscription_id)
        answer = graphql.execute(QUOTE_DAYS, {"id": subscription_id}, token=token)

    assert pending["refund"] == {"status": "PENDING", "amount": {"amount": "189.36", "currency": "RUB"}}
    assert pending["subscription"]["status"] == "ACTIVE"
    assert answer["data"]["refundQuote"]["amount"] == {"amount": "0.00"}
    assert answer["data"]["refundQuote"]["rule"] == "NOTHING_LEFT"
    assert answer["data"]["refundQuote"]["refundable"] is False


def test_a_refund_yookassa_cancels_is_an_error_and_the_subscription_stays(graphql, token, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.CANCELED
    subscription_id = to_base64("PlanSubscription", active.pk)

    payload = cancel(graphql, token, subscription_id, key="declined")
    again = cancel(graphql, token, subscription_id, key="declined")

    expected_error = {
        "code": "REFUND_CANCELED",
        "field": None,
        "message": "YooKassa declined the refund (rejected_by_payee): no money was returned and the subscription "
        "is unchanged.",
    }
    assert payload["errors"] == [expected_error]
    assert payload["refund"] == {"status": "CANCELED", "amount": {"amount": "299.00", "currency": "RUB"}}
    assert payload["subscription"]["status"] == "ACTIVE"
    assert again == payload
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.get().status == RefundStatus.CANCELED
    assert sandbox.store.count_refunds() == 1


def test_a_second_cancellation_while_the_refund_is_pending_is_refund_in_progress(graphql, token, active, sandbox):
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    subscription_id = to_base64("PlanSubscription", active.pk)
    pending = cancel(graphql, token, subscription_id)

    payloads = [cancel(graphql, token, subscription_id, mode=mode) for mode in ("NOW_WITH_REFUND", "AT_PERIOD_END")]

    assert pending["errors"] == []
    for payload in payloads:
        assert [error["code"] for error in payload["errors"]] == ["REFUND_IN_PROGRESS"]
        assert (payload["subscription"], payload["refund"]) == (None, None)
    active.refresh_from_db()
    assert (active.status, active.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, False)
    assert Refund.objects.count() == 1
    assert sandbox.store.count_refunds() == 1


def test_a_key_used_for_another_cancellation_is_refused_and_changes_nothing(graphql, token, active, sandbox):
    subscription_id = to_base64("PlanSubscription", active.pk)
    first = cancel(graphql, token, subscription_id, mode="AT_PERIOD_END", key="cancel-1")

    payload = cancel(graphql, token, subscription_id, mode="NOW_WITH_REFUND", key="cancel-1")

    assert first["errors"] == []
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [
        ("IDEMPOTENCY_KEY_REUSED", "idempotencyKey")
    ]
    assert (payload["subscription"], payload["refund"]) == (None, None)
    active.refresh_from_db()
    assert active.status == SubscriptionStatus.ACTIVE
    assert Refund.objects.count() == 0
    assert sandbox.store.count_refunds() == 0
