"""A malformed `/graphql/` request is a clear 400 (text/plain, like strawberry's own), never a 500,
and changes nothing: each body below carries a `subscribe` that would otherwise start a checkout.
A malformed websocket message closes its socket with 4400 instead of killing the consumer."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.relay import to_base64

from billing.models import ClientRequest, Payment, Subscription
from config.asgi import application

pytestmark = [pytest.mark.django_db]

SUBSCRIBE = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) { payment { id } errors { code message field } }
}
"""
JSON = "application/json"
NOT_UTF8 = "The request body must be JSON encoded as UTF-8."
NOT_A_UTF8_CHARSET = "JSON bodies must be UTF-8: send 'charset=utf-8' or no charset."
TOO_DEEP = "The request's JSON is nested more than 32 levels deep."
NOT_AN_OBJECT = 'The request\'s JSON must be an object, such as {"query": "{ plans { code } }"}.'
TOO_LARGE = "A number in the request's JSON is too large."
TOO_LONG = "A number in the request's JSON has more than 64 digits."
NOT_JSON = "Send the operation as JSON, with 'Content-Type: application/json'."


@pytest.fixture
def subscribe_body(plan) -> dict:
    """A subscribe operation that starts a checkout when it is served."""
    return {
        "query": SUBSCRIBE,
        "variables": {
            "input": {
                "planId": to_base64("Plan", plan.pk),
                "returnUrl": "https://cinema.example/return",
                "idempotencyKey": "KEY",
            }
        },
    }


def _with(body: dict, **fields) -> str:
    return json.dumps({**body, **fields})


def _post(body: str | bytes, content_type: str, token: str):
    """POST the bytes exactly as given (the test client would re-encode a str in the declared charset)."""
    raw = body.encode() if isinstance(body, str) else body
    client = Client(raise_request_exception=False)
    return client.generic(
        "POST", "/graphql/", raw, content_type=content_type, headers={"Authorization": f"Bearer {token}"}
    )


def _deeply_nested(body: dict, depth: int) -> str:
    """The body with `extensions` nested `depth` lists deep (json.dumps itself would recurse)."""
    return _with(body, extensions="NESTED").replace('"NESTED"', "[" * depth + "]" * depth)


MALFORMED = {
    # name: (how to make the body from the subscribe body, content type, the 400's message)
    "5,000 levels of nesting": (lambda body: _deeply_nested(body, 5000), JSON, TOO_DEEP),
    "33 levels of nesting": (lambda body: _deeply_nested(body, 33), JSON, TOO_DEEP),
    "invalid UTF-8": (
        lambda body: _with(body).replace("KEY", "K\udcffY").encode("utf-8", "surrogateescape"),
        JSON,
        NOT_UTF8,
    ),
    "UTF-16": (lambda body: _with(body).encode("utf-16"), JSON, NOT_UTF8),
    "a latin-1 charset": (
        lambda body: _with(body).replace("KEY", "clé").encode("latin-1"),
        f"{JSON}; charset=latin-1",
        NOT_A_UTF8_CHARSET,
    ),
    "an unknown charset": (lambda body: _with(body), f"{JSON}; charset=x-no-such-charset", NOT_A_UTF8_CHARSET),
    "null": (lambda body: "null", JSON, NOT_AN_OBJECT),
    "a JSON string": (lambda body: json.dumps(_with(body)), JSON, NOT_AN_OBJECT),
    "1e999 as the body": (lambda body: "1e999", JSON, TOO_LARGE),
    "1e999 in the variables": (lambda body: _with(body).replace('"KEY"', '"KEY", "amount": 1e999'), JSON, TOO_LARGE),
    "NaN in the variables": (
        lambda body: _with(body).replace('"KEY"', '"KEY", "amount": NaN'),
        JSON,
        "NaN is not a JSON number.",
    ),
    "a 5,000-digit integer": (
        lambda body: _with(body).replace('"KEY"', '"KEY", "amount": ' + "9" * 5000),
        JSON,
        TOO_LONG,
    ),
    "a lone surrogate": (
        lambda body: _with(body).replace("KEY", "K\\ud800Y"),
        JSON,
        "A string in the request's JSON has a lone surrogate (\\ud800-\\udfff).",
    ),
    "variables a list": (
        lambda body: _with(body, variables=[body["variables"]]),
        JSON,
        "The GraphQL operation's `variables` must be an object or null, if provided.",
    ),
    "variables a string": (
        lambda body: _with(body, variables=json.dumps(body["variables"])),
        JSON,
        "The GraphQL operation's `variables` must be an object or null, if provided.",
    ),
    "operationName a number": (
        lambda body: _with(body, operationName=1),
        JSON,
        "The GraphQL operation's `operationName` must be a string or null, if provided.",
    ),
    "operationName a list": (
        lambda body: _with(body, operationName=["Subscribe"]),
        JSON,
        "The GraphQL operation's `operationName` must be a string or null, if provided.",
    ),
    "a batch": (lambda body: json.dumps([body]), JSON, "Batching is not enabled"),
    "multipart (an upload)": (
        lambda body: (
            '--B\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
            f'{_with(body)}\r\n--B\r\nContent-Disposition: form-data; name="map"\r\n\r\n{{}}\r\n--B--\r\n'
        ),
        "multipart/form-data; boundary=B",
        NOT_JSON,
    ),
    "a form": (lambda body: "query=" + SUBSCRIBE, "application/x-www-form-urlencoded", NOT_JSON),
}


@pytest.mark.parametrize(("make", "content_type", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_is_a_clear_400_and_changes_nothing(
    subscribe_body, token, sandbox, make, content_type, message
):
    response = _post(make(subscribe_body), content_type, token)

    assert (response.status_code, response["Content-Type"], response.content.decode()) == (
        400,
        "text/plain",
        message,
    )
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert ClientRequest.objects.count() == 0
    assert sandbox.store.count_payments() == 0


@pytest.mark.parametrize("content_type", [JSON, f"{JSON}; charset=utf-8", f'{JSON}; charset="UTF-8"'])
def test_the_same_operation_well_formed_starts_a_checkout(subscribe_body, token, sandbox, content_type):
    response = _post(_with(subscribe_body).replace("KEY", "clé"), content_type, token)

    assert response.status_code == 200
    assert response.json()["data"]["subscribe"]["errors"] == []
    assert Subscription.objects.count() == 1
    assert sandbox.store.count_payments() == 1


def test_numbers_of_a_sane_size_are_served(graphql, token):
    answer = graphql.execute(
        "query($first: Int) { me { payments(first: $first) { edges { node { id } } } } }", {"first": 10}, token=token
    )

    assert answer == {"data": {"me": {"payments": {"edges": []}}}}


# --- Websocket messages: the same rules, a 4400 close instead of a dead consumer ------------------


async def _first_answer(text: str) -> dict:
    communicator = GraphQLWebsocketCommunicator(application, path="/graphql/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=text)
    answer = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return answer


MALFORMED_MESSAGES = {
    "5,000 levels of nesting": "[" * 5000 + "]" * 5000,
    "a payload nested 5,000 deep": '{"type": "connection_init", "payload": ' + "[" * 5000 + "]" * 5000 + "}",
    "a 5,000-digit integer": '{"type": "connection_init", "payload": {"n": ' + "9" * 5000 + "}}",
    "null": "null",
    "1e999": "1e999",
    "a list": '[{"type": "connection_init"}]',
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("text", MALFORMED_MESSAGES.values(), ids=MALFORMED_MESSAGES.keys())
def test_a_malformed_websocket_message_closes_the_socket_with_4400(text):
    answer = async_to_sync(_first_answer)(text)

    assert answer == {"type": "websocket.close", "code": 4400, "reason": "WebSocket message must be valid JSON"}


async def _answer_after_ack(text: str, protocol: str = "graphql-transport-ws") -> dict | None:
    """What the server sends back to `text` once the connection is acknowledged (None: nothing)."""
    communicator = GraphQLWebsocketCommunicator(application, path="/graphql/", protocol=protocol)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "connection_init"})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "connection_ack"
    await communicator.send_to(text_data=text)
    answer = None if await communicator.receive_nothing(timeout=0.2) else await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return answer


MISSHAPEN_OPERATIONS = {
    "an id that is a list": {"type": "subscribe", "id": ["1"], "payload": {"query": "{ plans { code } }"}},
    "no id": {"type": "subscribe", "payload": {"query": "{ plans { code } }"}},
    "a payload that is a list": {"type": "subscribe", "id": "1", "payload": []},
    "a query that is a number": {"type": "subscribe", "id": "1", "payload": {"query": 1}},
    "variables that are a list": {
        "type": "subscribe",
        "id": "1",
        "payload": {"query": "{ plans { code } }", "variables": []},
    },
    "a complete whose id is an object": {"type": "complete", "id": {}},
    "no type": {"id": "1"},
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("message", MISSHAPEN_OPERATIONS.values(), ids=MISSHAPEN_OPERATIONS.keys())
def test_a_misshapen_operation_message_closes_the_socket_with_4400(message):
    answer = async_to_sync(_answer_after_ack)(json.dumps(message))

    assert answer == {"type": "websocket.close", "code": 4400, "reason": "WebSocket message must be valid JSON"}


@pytest.mark.django_db(transaction=True)
def test_the_legacy_protocol_is_refused_before_any_message_is_read():
    async def connect_with_the_legacy_protocol():
        communicator = GraphQLWebsocketCommunicator(application, path="/graphql/", protocol="graphql-ws")
        await communicator.connect()
        answer = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return answer

    answer = async_to_sync(connect_with_the_legacy_protocol)()

    assert (answer["type"], answer["code"]) == ("websocket.close", 4406)
