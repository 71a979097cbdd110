"""A viewer's live websockets and subscriptions are capped (per process): past the cap a socket is
closed with code 4008, a subscription answers TOO_MANY_SUBSCRIPTIONS; what ends gives its slot back."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from strawberry import relay
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from config.asgi import application
from graphql_api.live_limits import live_counts
from tests.helpers import make_token, start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_PAYMENT = "subscription Watch($id: ID!) { payment(id: $id) { status } }"
NO_RE_READ_IN_TIME = 60.0


@pytest.fixture
def pending_id(viewer, plan, sandbox, settings) -> str:
    settings.LIVE_PAYMENT_RECHECK_SECONDS = NO_RE_READ_IN_TIME
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = NO_RE_READ_IN_TIME
    return str(relay.GlobalID("Payment", str(start_checkout(viewer, plan).payment.pk)))


def _subscribe(client, number: int, payment_id: str):
    return client.send_json_to(
        {"id": str(number), "type": "subscribe", "payload": {"query": WATCH_PAYMENT, "variables": {"id": payment_id}}}
    )


def test_a_subscription_past_the_viewers_cap_answers_too_many_subscriptions(viewer, token, pending_id, settings):
    settings.LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER = 2

    async def three_then_one_more() -> tuple[list[dict], list[dict], tuple, list[dict]]:
        async with GraphQLWebsocketCommunicator(
            application, path="/graphql/", connection_params={"Authorization": f"Bearer {token}"}
        ) as client:
            # given two live subscriptions
            for number in (1, 2):
                await _subscribe(client, number, pending_id)
            first_two = [await client.receive_json_from(timeout=5) for _ in range(2)]
            # when a third is asked for
            await _subscribe(client, 3, pending_id)
            refused = [await client.receive_json_from(timeout=5) for _ in range(2)]
            counts = live_counts(viewer_id=viewer.id)
            # and, once one of the two is completed, another
            await client.send_json_to({"id": "1", "type": "complete"})
            await asyncio.sleep(0.1)  # a completed subscription's task ends right after
            await _subscribe(client, 4, pending_id)
            after_one_ended = [await client.receive_json_from(timeout=5)]
        return first_two, refused, counts, after_one_ended

    first_two, refused, counts, after_one_ended = async_to_sync(three_then_one_more)()

    # then the third gets the error and completes, the two stay, and the fourth is served
    assert [message["payload"]["data"]["payment"]["status"] for message in first_two] == ["PENDING", "PENDING"]
    assert refused == [
        {
            "id": "3",
            "type": "next",
            "payload": {
                "data": None,
                "errors": [
                    {
                        "message": "Too many live subscriptions: at most 2 at once per viewer. Complete one first.",
                        "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": 2},
                    }
                ],
            },
        },
        {"id": "3", "type": "complete"},
    ]
    assert counts == (1, 2)
    assert after_one_ended[0]["id"] == "4"
    assert after_one_ended[0]["payload"]["data"]["payment"]["status"] == "PENDING"
    assert live_counts(viewer_id=viewer.id) == (0, 0)


async def _connection_init(token: str) -> tuple[WebsocketCommunicator, dict]:
    client = WebsocketCommunicator(application, "/graphql/", subprotocols=["graphql-transport-ws"])
    connected, _ = await client.connect()
    assert connected
    await client.send_json_to({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    return client, await client.receive_output(timeout=5)


def test_a_socket_past_the_viewers_cap_is_closed_with_4008_and_one_that_closed_gives_its_slot_back(
    viewer, token, settings
):
    settings.LIVE_MAX_SOCKETS_PER_VIEWER = 2

    async def three_sockets_then_one_more() -> tuple[list[dict], dict, tuple, dict]:
        # given two acknowledged sockets
        opened = [await _connection_init(token) for _ in range(2)]
        # when a third is opened
        third, refusal = await _connection_init(token)
        counts = live_counts(viewer_id=viewer.id)
        await third.wait()
        # and, once one of the two is closed, another
        await opened[0][0].disconnect()
        fourth, fourth_answer = await _connection_init(token)
        for client in (opened[1][0], fourth):
            await client.disconnect()
        return [answer for _, answer in opened], refusal, counts, fourth_answer

    answers, refusal, counts, fourth_answer = async_to_sync(three_sockets_then_one_more)()

    # then the third is closed with 4008, and the fourth is acknowledged
    assert answers == [{"type": "websocket.send", "text": '{"type":"connection_ack"}'}] * 2
    assert refusal == {"type": "websocket.close", "code": 4008, "reason": "Too many live websockets"}
    assert counts == (2, 0)
    assert fourth_answer == {"type": "websocket.send", "text": '{"type":"connection_ack"}'}
    assert live_counts(viewer_id=viewer.id) == (0, 0)


def test_another_viewers_sockets_do_not_count(viewer, token, settings):
    settings.LIVE_MAX_SOCKETS_PER_VIEWER = 1
    another = make_token("7b0e5d43-8f0e-4c1a-9b43-5c1f7b0e5d43", "another@example.com")

    async def one_each() -> list[dict]:
        mine, my_answer = await _connection_init(token)
        theirs, their_answer = await _connection_init(another)
        for client in (mine, theirs):
            await client.disconnect()
        return [my_answer, their_answer]

    assert async_to_sync(one_each)() == [{"type": "websocket.send", "text": '{"type":"connection_ack"}'}] * 2
