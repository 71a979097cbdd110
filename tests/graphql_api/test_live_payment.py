"""The `payment(id)` subscription over the websocket: the payment now, each change, then completion.

Billing's change reaches the subscription as a channel-layer hint (the in-memory layer here), and
a lost hint is made up for by the fallback re-read. Each test drives billing while a viewer's
websocket watches; the communicator waits at most 5 s for each message.
"""

import asyncio
import logging
import uuid

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from strawberry import relay
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from billing import services
from billing.models import BillingEvent, Payment, PaymentStatus, RefundStatus, SubscriptionStatus
from billing.services import CancelMode
from config.asgi import application
from graphql_api.live import PAYMENT_CHANGED, on_billing_event, payment_group
from sandbox.emulator import RefundOutcome
from tests.helpers import make_token, pay_on_page, start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_PAYMENT = """
subscription WatchPayment($id: ID!) {
  payment(id: $id) {
    id status cancellationReason refundedAmount { amount } refunds { status } subscription { status }
  }
}
"""
SUCCESS_CARD = "5555555555554444"
DECLINED_CARD = "5555555555554600"  # insufficient_funds
# Longer than the communicator waits for a message: within a test, only a hint can bring a change.
NO_FALLBACK_IN_TIME = 60.0


def failing_listener(event: BillingEvent) -> None:
    raise RuntimeError("this listener is broken")


def _global_id(payment: Payment) -> str:
    return str(relay.GlobalID("Payment", str(payment.pk)))


async def _watch(token: str | None, payment_id: str, *, meanwhile=None) -> list:
    """Subscribe, take the first answer, run `meanwhile()` (billing's side), then read to completion."""
    connection_params = {"Authorization": f"Bearer {token}"} if token else {}
    async with GraphQLWebsocketCommunicator(
        application, path="/graphql/", connection_params=connection_params
    ) as client:
        answers = client.subscribe(WATCH_PAYMENT, {"id": payment_id})
        seen = [await anext(answers)]
        if meanwhile is not None:
            await meanwhile()
        seen += [answer async for answer in answers]
    return seen


def _pay_with(payment: Payment, card: str):
    """The viewer pays on YooKassa's page; YooKassa's news is applied as a webhook would apply it."""

    @sync_to_async
    def pay() -> None:
        pay_on_page(payment.confirmation_url, card)
        services.payment_refresh(provider_payment_id=payment.provider_payment_id)

    return pay


def _statuses(answers: list) -> list[str]:
    assert all(answer.errors is None for answer in answers), [answer.errors for answer in answers]
    return [answer.data["payment"]["status"] for answer in answers]


@pytest.fixture
def pending(viewer, plan, sandbox) -> Payment:
    return start_checkout(viewer, plan).payment


@pytest.fixture
def paid(viewer, plan, sandbox) -> Payment:
    payment = start_checkout(viewer, plan).payment
    pay_on_page(payment.confirmation_url, SUCCESS_CARD)
    return services.payment_refresh(provider_payment_id=payment.provider_payment_id)


# --- What the viewer sees ------------------------------------------------------------------------


def test_a_pending_payment_is_seen_pending_then_succeeded_then_the_subscription_completes(token, pending, settings):
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME

    answers = async_to_sync(_watch)(token, _global_id(pending), meanwhile=_pay_with(pending, SUCCESS_CARD))

    assert _statuses(answers) == ["PENDING", "SUCCEEDED"]
    assert answers[0].data["payment"]["id"] == _global_id(pending)
    assert answers[0].data["payment"]["subscription"] == {"status": "PENDING"}
    assert answers[1].data["payment"]["subscription"] == {"status": "ACTIVE"}
    assert answers[1].data["payment"]["cancellationReason"] is None


def test_a_declined_card_is_seen_as_canceled_with_its_reason(token, pending, settings):
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME

    answers = async_to_sync(_watch)(token, _global_id(pending), meanwhile=_pay_with(pending, DECLINED_CARD))

    assert _statuses(answers) == ["PENDING", "CANCELED"]
    assert answers[1].data["payment"]["cancellationReason"] == "insufficient_funds"
    assert answers[1].data["payment"]["subscription"] == {"status": "FAILED"}


def test_a_settled_payment_is_sent_once_and_the_subscription_completes(token, paid):
    answers = async_to_sync(_watch)(token, _global_id(paid))

    assert _statuses(answers) == ["SUCCEEDED"]


def test_a_refund_in_flight_is_watched_until_it_ends(viewer, token, paid, sandbox, settings):
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME
    sandbox.emulator.refund_outcome = RefundOutcome.PENDING
    refund = services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=paid.subscription_id, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
    ).refund
    assert refund.status == RefundStatus.PENDING

    @sync_to_async
    def refund_carried_out() -> None:
        sandbox.emulator.settle_refund(refund.provider_refund_id, "succeeded")
        services.refund_refresh(provider_refund_id=refund.provider_refund_id)

    answers = async_to_sync(_watch)(token, _global_id(paid), meanwhile=refund_carried_out)

    assert [answer.data["payment"] for answer in answers] == [
        {
            "id": _global_id(paid),
            "status": "SUCCEEDED",
            "cancellationReason": None,
            "refundedAmount": {"amount": "0.00"},
            "refunds": [{"status": "PENDING"}],
            "subscription": {"status": "ACTIVE"},
        },
        {
            "id": _global_id(paid),
            "status": "SUCCEEDED",
            "cancellationReason": None,
            "refundedAmount": {"amount": "299.00"},
            "refunds": [{"status": "SUCCEEDED"}],
            "subscription": {"status": "CANCELED"},
        },
    ]


def test_a_watcher_that_stops_watching_leaves_the_payments_group(token, pending, settings):
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME
    group = payment_group(pending.pk)
    layer = get_channel_layer()

    async def watch_then_stop() -> tuple[dict, int, int]:
        async with GraphQLWebsocketCommunicator(
            application, path="/graphql/", connection_params={"Authorization": f"Bearer {token}"}
        ) as client:
            await client.send_json_to(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": WATCH_PAYMENT, "variables": {"id": _global_id(pending)}},
                }
            )
            first = await client.receive_json_from(timeout=5)
            members_while_watching = len(layer.groups.get(group, {}))
            await client.send_json_to({"id": "1", "type": "complete"})
            await asyncio.sleep(0.1)
            return first, members_while_watching, len(layer.groups.get(group, {}))

    first, members_while_watching, members_after = async_to_sync(watch_then_stop)()

    assert first["type"] == "next"
    assert first["payload"]["data"]["payment"]["status"] == "PENDING"
    assert members_while_watching == 1
    assert members_after == 0


# --- Who may watch -------------------------------------------------------------------------------


def test_another_viewers_payment_reads_like_one_that_does_not_exist(pending):
    stranger = make_token(uuid.uuid4(), "stranger@example.com")
    unknown_id = str(relay.GlobalID("Payment", str(uuid.uuid4())))

    answers = async_to_sync(_watch)(stranger, _global_id(pending))
    unknown = async_to_sync(_watch)(stranger, unknown_id)

    assert [(answer.data, answer.errors) for answer in answers] == [({"payment": None}, None)]
    assert [(answer.data, answer.errors) for answer in unknown] == [({"payment": None}, None)]


def test_an_id_of_another_type_reads_like_a_payment_that_does_not_exist(token, pending):
    subscription_id = str(relay.GlobalID("PlanSubscription", str(pending.subscription_id)))

    answers = async_to_sync(_watch)(token, subscription_id)

    assert [(answer.data, answer.errors) for answer in answers] == [({"payment": None}, None)]


def test_without_a_token_the_subscription_asks_to_sign_in(pending):
    answers = async_to_sync(_watch)(None, _global_id(pending))

    assert [(answer.data, [(e.message, e.extensions) for e in answer.errors]) for answer in answers] == [
        (None, [("Sign in: send 'Authorization: Bearer <token>'.", {"code": "UNAUTHENTICATED"})])
    ]


def test_the_subscription_ends_with_an_error_when_the_token_expires(viewer, pending, settings, monkeypatch):
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME
    monkeypatch.setattr("graphql_api.auth.CLOCK_SKEW", 0)
    short_lived = make_token(viewer.id, viewer.email, expires_in=2)

    answers = async_to_sync(_watch)(short_lived, _global_id(pending))

    assert answers[0].data["payment"]["status"] == "PENDING"
    assert [(answer.data, [(e.message, e.extensions) for e in answer.errors]) for answer in answers[1:]] == [
        (None, [("The token has expired: sign in again.", {"code": "UNAUTHENTICATED"})])
    ]


# --- Hints are only hints ------------------------------------------------------------------------


def test_a_lost_hint_is_made_up_for_by_the_fallback_re_read(token, pending, settings):
    settings.BILLING_EVENT_LISTENERS = []
    settings.LIVE_PAYMENT_RECHECK_SECONDS = 0.2

    answers = async_to_sync(_watch)(token, _global_id(pending), meanwhile=_pay_with(pending, SUCCESS_CARD))

    assert _statuses(answers) == ["PENDING", "SUCCEEDED"]


def test_a_failing_listener_breaks_neither_billing_nor_the_listeners_after_it(token, pending, settings, caplog):
    settings.BILLING_EVENT_LISTENERS = [f"{__name__}.failing_listener", "graphql_api.live.on_billing_event"]
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_FALLBACK_IN_TIME

    with caplog.at_level(logging.ERROR, logger="billing.event_listeners"):
        answers = async_to_sync(_watch)(token, _global_id(pending), meanwhile=_pay_with(pending, SUCCESS_CARD))

    assert _statuses(answers) == ["PENDING", "SUCCEEDED"]
    pending.refresh_from_db()
    assert pending.status == PaymentStatus.SUCCEEDED
    assert pending.subscription.status == SubscriptionStatus.ACTIVE
    assert BillingEvent.objects.filter(payment=pending, type="payment.succeeded").count() == 1
    failures = [record for record in caplog.records if record.name == "billing.event_listeners"]
    assert failures
    assert all(record.exc_info[0] is RuntimeError for record in failures)


def test_a_hint_from_inside_a_running_event_loop_is_sent_in_the_background():
    payment_id = uuid.uuid4()
    event = BillingEvent(type="payment.succeeded", viewer_id=uuid.uuid4(), payment_id=payment_id)

    async def hint_heard_by_the_group() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(payment_group(payment_id), channel)
        on_billing_event(event)
        return await asyncio.wait_for(layer.receive(channel), timeout=2)

    assert async_to_sync(hint_heard_by_the_group)() == {"type": PAYMENT_CHANGED}


def test_payment_groups_are_valid_channel_layer_group_names():
    assert get_channel_layer().require_valid_group_name(payment_group(uuid.uuid4()))


def test_a_subscription_over_http_is_refused_with_the_way_to_the_websocket(token, pending):
    response = Client().post(
        "/graphql/",
        {"query": WATCH_PAYMENT, "variables": {"id": _global_id(pending)}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.json() == {
        "data": None,
        "errors": [{"message": "Subscriptions are served over the websocket at /graphql/ (graphql-transport-ws)."}],
    }
