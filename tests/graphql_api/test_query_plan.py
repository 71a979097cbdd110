"""Every query the API makes is served by an index, also once the tables are large.

Each SELECT the API runs on billing's and the catalog's tables is EXPLAINed with sequential scans
disabled: PostgreSQL then still plans a "Seq Scan" only on a table that no index can serve.
"""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from strawberry.relay import from_base64, to_base64

from billing.models import (
    Payment,
    PaymentKind,
    PaymentMethod,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from tests.helpers import make_token, pay_on_page

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

OTHER_VIEWERS = 2000
PAYMENTS_PER_OTHER_VIEWER = 5

ME = """
{
  me {
    activeSubscription { status currentPeriodStart currentPeriodEnd plan { code } paymentMethod { title } }
    subscriptions { status currentPeriodEnd plan { code } }
    payments(first: 20) {
      edges { node { id status amount { amount currency } subscription { plan { name } } } }
      pageInfo { hasNextPage endCursor }
    }
    paymentMethods { title }
  }
}
"""

PAYMENT = """
query Payment($id: ID!) {
  payment(id: $id) { id status paidAt cancellationReason amount { amount currency } subscription { plan { name } } }
}
"""

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) {
    payment { id status confirmationUrl }
    subscription { id status }
    errors { code }
  }
}
"""


def _history(viewer_id: uuid.UUID, plans: list, *, subscriptions: int, payments_each: int) -> tuple:
    """Unsaved rows of a paid history: expired subscriptions, then an active one, each paid `payments_each` times."""
    now = timezone.now()
    method = PaymentMethod(
        viewer_id=viewer_id, provider_method_id=f"pm-{viewer_id}", type="bank_card", title="Bank card *4444"
    )
    subscription_rows, payment_rows = [], []
    for n in range(subscriptions):
        last = n == subscriptions - 1
        start = now - timedelta(days=30 * (subscriptions - n))
        subscription = Subscription(
            viewer_id=viewer_id,
            viewer_email="viewer@example.com",
            plan=plans[n % len(plans)],
            status=SubscriptionStatus.ACTIVE if last else SubscriptionStatus.EXPIRED,
            current_period_start=start,
            current_period_end=start + timedelta(days=30),
            payment_method=method,
            auto_renew=last,
        )
        subscription_rows.append(subscription)
        for k in range(payments_each):
            payment_id = uuid.uuid4()
            payment_rows.append(
                Payment(
                    id=payment_id,
                    viewer_id=viewer_id,
                    subscription=subscription,
                    kind=PaymentKind.INITIAL if k == 0 else PaymentKind.RENEWAL,
                    period_start=start + timedelta(days=30 * k) if k else None,
                    amount=Decimal("299.00"),
                    currency="RUB",
                    description="Basic, 1 month",
                    status=PaymentStatus.SUCCEEDED,
                    idempotence_key=f"payment-{payment_id}",
                    provider_payment_id=f"yk-{payment_id}",
                    payment_method=method,
                    paid_at=start,
                )
            )
    return [method], subscription_rows, payment_rows


def _deliver(notification: dict) -> int:
    """YooKassa posting a notification to the webhook; its answer's status."""
    return Client().post("/webhooks/yookassa/", notification, content_type="application/json").status_code


def _explain_without_seq_scans(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = on")
    return plan


def _selects_on_our_tables(captured: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and ('"billing_' in query["sql"] or '"plans_' in query["sql"])
    ]


def _assert_served_by_indexes(selects: list[str]) -> None:
    for sql in selects:
        plan = _explain_without_seq_scans(sql)
        assert "Seq Scan on billing_" not in plan, f"{sql}\n\n{plan}"
        assert "Seq Scan on plans_" not in plan, f"{sql}\n\n{plan}"


@pytest.fixture
def seeded(plans, viewer):
    """The viewer with 100 payments in 10 subscriptions, among 2000 other viewers with 5 payments each."""
    catalog = list(plans.values())
    methods, subscriptions, payments = _history(viewer.id, catalog, subscriptions=10, payments_each=10)
    for _ in range(OTHER_VIEWERS):
        other = _history(uuid.uuid4(), catalog, subscriptions=1, payments_each=PAYMENTS_PER_OTHER_VIEWER)
        methods += other[0]
        subscriptions += other[1]
        payments += other[2]
    PaymentMethod.objects.bulk_create(methods, batch_size=1000)
    Subscription.objects.bulk_create(subscriptions, batch_size=1000)
    Payment.objects.bulk_create(payments, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return payments[:100]


def test_every_query_of_me_and_payment_is_served_by_an_index(graphql, viewer, seeded):
    token = make_token(viewer.id, viewer.email)
    payment_id = to_base64("Payment", seeded[37].pk)

    with CaptureQueriesContext(connection) as captured:
        me = graphql.execute(ME, token=token)
        payment = graphql.execute(PAYMENT, {"id": payment_id}, token=token)

    selects = _selects_on_our_tables(captured)
    assert "errors" not in me, me
    assert len(me["data"]["me"]["payments"]["edges"]) == 20
    assert me["data"]["me"]["payments"]["pageInfo"]["hasNextPage"] is True
    assert len(me["data"]["me"]["subscriptions"]) == 10
    assert payment["data"]["payment"]["id"] == payment_id
    assert Payment.objects.count() == 100 + OTHER_VIEWERS * PAYMENTS_PER_OTHER_VIEWER
    assert selects == [query["sql"] for query in captured.captured_queries]
    _assert_served_by_indexes(selects)


def test_every_query_of_checkout_and_its_webhook_is_served_by_an_index(graphql, seeded, plan, sandbox):
    token = make_token(uuid.uuid4(), "new-viewer@example.com")
    checkout = {"planId": to_base64("Plan", plan.pk), "returnUrl": "https://cinema.example/return"}
    keyed = {"input": {**checkout, "idempotencyKey": "first-checkout"}}
    unkeyed = {"input": {**checkout, "idempotencyKey": None}}

    with CaptureQueriesContext(connection) as captured:
        first = graphql.execute(SUBSCRIBE, keyed, token=token)["data"]["subscribe"]
        repeated = graphql.execute(SUBSCRIBE, keyed, token=token)["data"]["subscribe"]
        again = graphql.execute(SUBSCRIBE, unkeyed, token=token)["data"]["subscribe"]
        pay_on_page(first["payment"]["confirmationUrl"], "5555555555554444")
        (notification,) = sandbox.store.notifications()
        delivered = _deliver(notification.body)
        duplicate = _deliver(notification.body)

    selects = _selects_on_our_tables(captured)
    assert first["errors"] == []
    assert repeated == first
    assert again == first
    assert (delivered, duplicate) == (200, 200)
    assert Payment.objects.get(pk=from_base64(first["payment"]["id"])[1]).subscription.status == "active"
    assert {re.search(r'FROM "(\w+)"', sql)[1] for sql in selects} == {
        "plans_plan",
        "billing_clientrequest",
        "billing_subscription",
        "billing_payment",
        "billing_paymentmethod",
        "billing_viewerentitlements",
    }
    _assert_served_by_indexes(selects)
