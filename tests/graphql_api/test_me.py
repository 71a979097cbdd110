"""`me` and `payment(id)`: a viewer sees their own billing and nobody else's."""

import uuid

import pytest
from strawberry.relay import to_base64

from billing import services
from tests.helpers import make_token, pay_on_page, start_checkout

pytestmark = pytest.mark.django_db

ME = """
{
  me {
    id
    email
    activeSubscription { status plan { code } autoRenew paymentMethod { title cardLast4 } }
    subscriptions { status }
    payments(first: 10) { totalCount edges { node { id status kind amount { amount } } } }
    paymentMethods { title }
  }
}
"""


def start(viewer, plan):
    return start_checkout(viewer, plan).payment


def test_a_new_viewer_has_nothing(graphql, token, viewer):
    me = graphql.execute(ME, token=token)["data"]["me"]

    assert me == {
        "id": str(viewer.id),
        "email": viewer.email,
        "activeSubscription": None,
        "subscriptions": [],
        "payments": {"totalCount": 0, "edges": []},
        "paymentMethods": [],
    }


def test_a_paid_subscription_shows_up(graphql, token, viewer, plan, sandbox):
    payment = start(viewer, plan)
    pay_on_page(payment.confirmation_url, "5555555555554444")
    services.payment_refresh(provider_payment_id=payment.provider_payment_id)

    me = graphql.execute(ME, token=token)["data"]["me"]

    assert me["activeSubscription"] == {
        "status": "ACTIVE",
        "plan": {"code": "basic-monthly"},
        "autoRenew": True,
        "paymentMethod": {"title": "Bank card *4444", "cardLast4": "4444"},
    }
    assert me["payments"]["edges"][0]["node"]["status"] == "SUCCEEDED"
    assert me["paymentMethods"] == [{"title": "Bank card *4444"}]


def test_payment_by_id_for_its_viewer_only(graphql, token, viewer, plan, sandbox):
    payment = start(viewer, plan)
    query = "query($id: ID!) { payment(id: $id) { id status } }"
    payment_id = to_base64("Payment", payment.pk)

    mine = graphql.execute(query, {"id": payment_id}, token=token)
    theirs = graphql.execute(query, {"id": payment_id}, token=make_token(uuid.uuid4()))
    nonsense = graphql.execute(query, {"id": to_base64("Plan", 1)}, token=token)

    assert mine["data"]["payment"] == {"id": payment_id, "status": "PENDING"}
    assert theirs == {"data": {"payment": None}}
    assert nonsense == {"data": {"payment": None}}


def test_payments_page_newest_first_with_cursors(graphql, token, viewer, plan, sandbox):
    from billing.models import Payment, PaymentStatus

    first = start(viewer, plan)
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.CANCELED)
    second = start(viewer, plan)
    query = """
      query($after: String) {
        me { payments(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }
      }
    """

    page_one = graphql.execute(query, token=token)["data"]["me"]["payments"]
    page_two = graphql.execute(query, {"after": page_one["pageInfo"]["endCursor"]}, token=token)["data"]["me"][
        "payments"
    ]

    assert [edge["node"]["id"] for edge in page_one["edges"]] == [to_base64("Payment", second.pk)]
    assert page_one["pageInfo"]["hasNextPage"] is True
    assert [edge["node"]["id"] for edge in page_two["edges"]] == [to_base64("Payment", first.pk)]
    assert page_two["pageInfo"]["hasNextPage"] is False
