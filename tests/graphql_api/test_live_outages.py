"""Live subscriptions through outages: with Redis frozen they go on from the database (and the
socket stays open); with the database away they end with a retryable SERVICE_UNAVAILABLE error,
never `payment: null` (which means "no such payment")."""

import logging
import socket
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import OperationalError
from strawberry import relay
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from billing import selectors, services
from config.asgi import application
from config.settings import base
from tests.frozen_redis import FrozenRedis
from tests.helpers import SUCCESS_CARD, pay_on_page, start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_PAYMENT = "subscription Watch($id: ID!) { payment(id: $id) { status } }"


@pytest.fixture
def frozen_redis(settings):
    """Redis for the channel layer and the cache, as production configures them, frozen."""
    with FrozenRedis() as frozen:
        settings.CHANNEL_LAYERS = base.redis_channel_layers(frozen.url)
        settings.CACHES = base.redis_caches(frozen.url)
        yield frozen


def _global_id(payment) -> str:
    return str(relay.GlobalID("Payment", str(payment.pk)))


async def _watch(token: str, payment_id: str, *, meanwhile=None) -> list[dict]:
    """Subscribe; take the first message; run `meanwhile()`; then every message up to `complete`."""
    async with GraphQLWebsocketCommunicator(
        application, path="/graphql/", connection_params={"Authorization": f"Bearer {token}"}
    ) as client:
        subscribe = {"query": WATCH_PAYMENT, "variables": {"id": payment_id}}
        await client.send_json_to({"id": "1", "type": "subscribe", "payload": subscribe})
        messages = [await client.receive_json_from(timeout=5)]
        if meanwhile is not None:
            await meanwhile()
        while messages[-1]["type"] != "complete":
            messages.append(await client.receive_json_from(timeout=5))
    return messages


def test_with_redis_frozen_a_live_subscription_still_sees_the_payment_succeed(
    viewer, token, plan, sandbox, settings, frozen_redis
):
    # given a frozen Redis, and a viewer watching their pending payment
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = 0.2
    settings.LIVE_PAYMENT_RECHECK_SECONDS = 0.5
    payment = start_checkout(viewer, plan).payment

    @sync_to_async
    def pay() -> None:
        pay_on_page(payment.confirmation_url, SUCCESS_CARD)
        services.payment_refresh(provider_payment_id=payment.provider_payment_id)

    # when the viewer pays (the hint is lost in Redis)
    messages = async_to_sync(_watch)(token, _global_id(payment), meanwhile=pay)

    # then the re-read brings the news, and the subscription completes
    assert [message["type"] for message in messages] == ["next", "next", "complete"]
    assert [message["payload"]["data"]["payment"]["status"] for message in messages[:2]] == ["PENDING", "SUCCEEDED"]
    assert frozen_redis.connections, "the channel layer never tried Redis"


def test_a_database_outage_during_a_live_subscription_is_a_retryable_error_not_null(
    viewer, token, plan, sandbox, settings, monkeypatch
):
    # given a viewer watching their pending payment
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = 0.2
    payment = start_checkout(viewer, plan).payment

    @sync_to_async
    def database_goes_away() -> None:
        def unreachable(**kwargs):
            raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

        monkeypatch.setattr(selectors, "payment_get_for_viewer", unreachable)

    # when the database stops answering
    messages = async_to_sync(_watch)(token, _global_id(payment), meanwhile=database_goes_away)

    # then the next re-read ends the subscription with SERVICE_UNAVAILABLE, not with payment: null
    assert messages[0]["payload"] == {"data": {"payment": {"status": "PENDING"}}}
    assert messages[1:] == [
        {
            "id": "1",
            "type": "next",
            "payload": {
                "data": None,
                "errors": [
                    {
                        "message": "The payment cannot be read right now: subscribe again in a few seconds.",
                        "extensions": {"code": "SERVICE_UNAVAILABLE", "retryable": True, "retryAfterSeconds": 5},
                    }
                ],
            },
        },
        {"id": "1", "type": "complete"},
    ]


def test_a_database_outage_when_a_live_subscription_starts_is_the_same_retryable_error(
    viewer, token, plan, sandbox, monkeypatch
):
    payment = start_checkout(viewer, plan).payment

    def unreachable(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "payment_get_for_viewer", unreachable)

    messages = async_to_sync(_watch)(token, _global_id(payment))

    assert [message["type"] for message in messages] == ["next", "complete"]
    assert messages[0]["payload"]["data"] is None
    assert [error["extensions"]["code"] for error in messages[0]["payload"]["errors"]] == ["SERVICE_UNAVAILABLE"]


def test_with_redis_down_the_socket_stays_open_and_the_subscription_still_sees_the_payment_succeed(
    viewer, token, plan, sandbox, settings, caplog
):
    # given a Redis that refuses connections (its port closed), and a viewer watching a pending payment
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    settings.CHANNEL_LAYERS = base.redis_channel_layers(f"redis://127.0.0.1:{port}/0")
    settings.CACHES = base.redis_caches(f"redis://127.0.0.1:{port}/0")
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = 0.2
    settings.LIVE_PAYMENT_RECHECK_SECONDS = 0.5
    payment = start_checkout(viewer, plan).payment

    @sync_to_async
    def pay_after_the_layer_failed() -> None:
        time.sleep(1.5)  # the consumer's reads of the layer have failed (and been retried) by now
        pay_on_page(payment.confirmation_url, SUCCESS_CARD)
        services.payment_refresh(provider_payment_id=payment.provider_payment_id)

    # when the viewer pays
    with caplog.at_level(logging.WARNING, logger="graphql_api.views"):
        messages = async_to_sync(_watch)(token, _global_id(payment), meanwhile=pay_after_the_layer_failed)

    # then the socket was not closed (no 1011): the re-read brought the news and the subscription completed
    assert [message["type"] for message in messages] == ["next", "next", "complete"]
    assert [message["payload"]["data"]["payment"]["status"] for message in messages[:2]] == ["PENDING", "SUCCEEDED"]
    assert "The channel layer cannot be read" in caplog.text
