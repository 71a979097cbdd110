"""setAutoRenew, removePaymentMethod and the next-payment fields over GraphQL."""

import uuid
from datetime import timedelta

import pytest
from strawberry.relay import to_base64

from billing import clock, services
from billing.services import renewals
from tests.helpers import make_token, pay_on_page, start_checkout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sandbox")]

SUBSCRIPTION = (
    "{ me { activeSubscription { autoRenew cancelAtPeriodEnd nextPaymentAt nextPaymentAmount { amount currency } } } }"
)
SET_AUTO_RENEW = """
mutation($input: SetAutoRenewInput!) {
  setAutoRenew(input: $input) { subscription { autoRenew nextPaymentAt } errors { code field } }
}
"""
REMOVE = """
mutation($input: RemovePaymentMethodInput!) {
  removePaymentMethod(input: $input) { paymentMethod { title } errors { code field } }
}
"""


def set_auto_renew(graphql, token, subscription, enabled):
    variables = {"input": {"subscriptionId": to_base64("PlanSubscription", subscription.pk), "enabled": enabled}}
    return graphql.execute(SET_AUTO_RENEW, variables, token=token)["data"]["setAutoRenew"]


def test_the_next_payment_is_a_day_before_the_period_ends(graphql, token, active):
    with clock.moved_to(active.current_period_start + timedelta(days=1)):
        subscription = graphql.execute(SUBSCRIPTION, token=token)["data"]["me"]["activeSubscription"]

    assert subscription == {
        "autoRenew": True,
        "cancelAtPeriodEnd": False,
        "nextPaymentAt": (active.current_period_end - timedelta(hours=24)).isoformat(),
        "nextPaymentAmount": {"amount": "299.00", "currency": "RUB"},
    }


def test_switching_auto_renew_off_and_on(graphql, token, active):
    off = set_auto_renew(graphql, token, active, False)
    on = set_auto_renew(graphql, token, active, True)

    assert off == {"subscription": {"autoRenew": False, "nextPaymentAt": None}, "errors": []}
    assert on["subscription"]["autoRenew"] is True
    assert on["subscription"]["nextPaymentAt"] is not None


def test_switching_on_resumes_a_cancellation_at_period_end(graphql, token, viewer, active):
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=services.CancelMode.AT_PERIOD_END, idempotency_key=None
    )

    set_auto_renew(graphql, token, active, True)

    active.refresh_from_db()
    assert active.cancel_at_period_end is False
    assert active.auto_renew is True


def test_auto_renew_needs_a_saved_card(graphql, token, viewer, plan):
    payment = start_checkout(viewer, plan, save_payment_method=False).payment
    pay_on_page(payment.confirmation_url, "5555555555554444")
    subscription = services.payment_refresh(provider_payment_id=payment.provider_payment_id).subscription

    answer = set_auto_renew(graphql, token, subscription, True)

    assert answer == {"subscription": None, "errors": [{"code": "NO_PAYMENT_METHOD", "field": None}]}


def test_someone_elses_subscription_is_not_found(graphql, active):
    answer = set_auto_renew(graphql, make_token(uuid.uuid4()), active, False)

    assert answer["errors"] == [{"code": "NOT_FOUND", "field": "subscriptionId"}]
    active.refresh_from_db()
    assert active.auto_renew is True


def test_removing_the_card_stops_renewal(graphql, token, active):
    variables = {"input": {"id": to_base64("PaymentMethod", active.payment_method_id)}}

    answer = graphql.execute(REMOVE, variables, token=token)["data"]["removePaymentMethod"]
    me = graphql.execute(
        "{ me { paymentMethods { title } activeSubscription { autoRenew nextPaymentAt } } }", token=token
    )

    assert answer == {"paymentMethod": {"title": "Bank card *4444"}, "errors": []}
    assert me["data"]["me"] == {"paymentMethods": [], "activeSubscription": {"autoRenew": False, "nextPaymentAt": None}}
    again = graphql.execute(REMOVE, variables, token=token)["data"]["removePaymentMethod"]
    assert again["errors"] == [{"code": "NOT_FOUND", "field": "id"}]


def test_someone_elses_card_cannot_be_removed(graphql, active):
    variables = {"input": {"id": to_base64("PaymentMethod", active.payment_method_id)}}

    answer = graphql.execute(REMOVE, variables, token=make_token(uuid.uuid4()))["data"]["removePaymentMethod"]

    assert answer["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    active.payment_method.refresh_from_db()
    assert active.payment_method.is_active is True


def test_renewals_show_in_the_payment_history(graphql, token, active):
    with clock.moved_to(active.current_period_end - timedelta(hours=2)):
        renewals.subscription_renew_due()

    edges = graphql.execute("{ me { payments(first: 5) { edges { node { kind status } } } } }", token=token)
    assert [edge["node"] for edge in edges["data"]["me"]["payments"]["edges"]] == [
        {"kind": "RENEWAL", "status": "SUCCEEDED"},
        {"kind": "INITIAL", "status": "SUCCEEDED"},
    ]
