"""A page of payments costs the same few SQL queries however long it is: no query per payment."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Payment, PaymentKind, PaymentMethod, PaymentStatus, Subscription, SubscriptionStatus

pytestmark = pytest.mark.django_db

PAYMENTS = """
query Payments($first: Int!) {
  me {
    payments(first: $first) {
      edges {
        node {
          id
          kind
          status
          paidAt
          amount { amount currency }
          subscription { status currentPeriodEnd plan { code name price { amount currency } } }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


@pytest.fixture
def history(viewer, plans):
    """100 paid payments of the viewer in 10 subscriptions, across every plan; and another viewer's."""
    now = timezone.now()
    catalog = list(plans.values())
    for viewer_id, subscriptions in ((viewer.id, 10), (uuid.uuid4(), 3)):
        method = PaymentMethod.objects.create(
            viewer_id=viewer_id, provider_method_id=f"pm-{viewer_id}", type="bank_card", title="Bank card *4444"
        )
        for n in range(subscriptions):
            start = now - timedelta(days=30 * (subscriptions - n))
            last = n == subscriptions - 1
            subscription = Subscription.objects.create(
                viewer_id=viewer_id,
                plan=catalog[n % len(catalog)],
                status=SubscriptionStatus.ACTIVE if last else SubscriptionStatus.EXPIRED,
                current_period_start=start,
                current_period_end=start + timedelta(days=30),
                payment_method=method,
            )
            Payment.objects.bulk_create(_paid(subscription, method, number=k) for k in range(10))


def _paid(subscription: Subscription, method: PaymentMethod, *, number: int) -> Payment:
    """The subscription's `number`th payment: the first one, or the renewal of period `number`."""
    payment_id = uuid.uuid4()
    return Payment(
        id=payment_id,
        viewer_id=subscription.viewer_id,
        subscription=subscription,
        kind=PaymentKind.RENEWAL if number else PaymentKind.INITIAL,
        period_start=subscription.current_period_start + timedelta(days=30 * number) if number else None,
        amount=subscription.plan.price,
        currency="RUB",
        description=subscription.plan.name,
        status=PaymentStatus.SUCCEEDED,
        idempotence_key=f"payment-{payment_id}",
        provider_payment_id=f"yk-{payment_id}",
        payment_method=method,
        paid_at=subscription.current_period_start,
    )


def _list_payments(graphql, token: str, first: int) -> tuple[list[str], list[dict]]:
    """The SQL run to list the first `first` payments, and the edges listed."""
    with CaptureQueriesContext(connection) as captured:
        answer = graphql.execute(PAYMENTS, {"first": first}, token=token)
    return [query["sql"] for query in captured.captured_queries], answer["data"]["me"]["payments"]["edges"]


def test_listing_a_hundred_payments_takes_as_many_queries_as_listing_ten(graphql, token, history):
    ten_queries, ten = _list_payments(graphql, token, 10)
    hundred_queries, hundred = _list_payments(graphql, token, 100)

    assert len(ten) == 10
    assert len(hundred) == 100
    assert {edge["node"]["subscription"]["plan"]["code"] for edge in hundred} == {
        "basic-monthly",
        "premium-monthly",
        "premium-yearly",
    }
    # One query: the page of payments joined to their subscriptions and plans.
    assert (len(ten_queries), len(hundred_queries)) == (1, 1), "\n".join(
        [f"10 payments: {len(ten_queries)} queries, 100 payments: {len(hundred_queries)} queries", *hundred_queries]
    )
