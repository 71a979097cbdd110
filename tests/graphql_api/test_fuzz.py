"""Hypothesis throws arbitrary requests at `/graphql/`: whatever comes in, the answer is a 4xx or a
GraphQL answer, never a 500 and never a masked "Unexpected error." (a client's mistake told as ours).
Cursors and token claims get the same treatment (strategies and settings in tests/fuzzing.py)."""

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.relay import to_base64

from config.asgi import application
from graphql_api.auth import AuthenticationError, viewer_from_token
from tests.fuzzing import FUZZ, content_types, deep_nesting, encoded, json_atoms, json_object, json_texts

pytestmark = pytest.mark.django_db

# Relay ids of our types around arbitrary primary keys, for the `id` arguments.
relay_ids = st.tuples(st.sampled_from(["Plan", "Payment", "Subscription", "PaymentMethod"]), st.text(max_size=40)).map(
    lambda type_and_pk: json.dumps(to_base64(*type_and_pk))
)
any_json = st.one_of(json_texts(st.one_of(json_atoms, relay_ids)), deep_nesting)

# Real operations, so that fuzzed variables reach resolvers, and arbitrary text besides.
OPERATIONS = [
    "{ plans { id code } }",
    "query($after: String, $before: String, $first: Int, $last: Int) {"
    " me { payments(after: $after, before: $before, first: $first, last: $last) { edges { cursor node { id } } } } }",
    "query($id: ID!) { payment(id: $id) { id status } }",
    "query($subscriptionId: ID!) { refundQuote(subscriptionId: $subscriptionId) { amount { amount } } }",
    "mutation($input: SetAutoRenewInput!) { setAutoRenew(input: $input) { errors { code } } }",
    "mutation($input: CancelSubscriptionInput!) { cancelSubscription(input: $input) { errors { code } } }",
]
queries = st.one_of(st.sampled_from(OPERATIONS).map(json.dumps), st.text(max_size=200).map(json.dumps), any_json)
operation_bodies = st.fixed_dictionaries(
    {"query": queries},
    optional={
        "variables": any_json,
        "operationName": any_json,
        "extensions": any_json,
    },
).map(lambda fields: json_object({json.dumps(key): value for key, value in fields.items()}))

bodies = st.one_of(
    st.binary(max_size=500),
    any_json.map(str.encode),
    operation_bodies.map(encoded),
)


def _no_server_error(response) -> None:
    assert response.status_code < 500, response.content[:500]
    assert b"Unexpected error." not in response.content, response.content[:500]


@FUZZ
@given(body=bodies, content_type=content_types)
def test_no_body_gets_a_500(token, body, content_type):
    client = Client(raise_request_exception=False)

    response = client.generic(
        "POST", "/graphql/", body, content_type=content_type, headers={"Authorization": f"Bearer {token}"}
    )

    _no_server_error(response)


@FUZZ
@given(variables=any_json, query=st.sampled_from(OPERATIONS))
def test_no_variables_of_a_real_operation_get_a_500(token, query, variables):
    body = json_object({'"query"': json.dumps(query), '"variables"': variables})
    client = Client(raise_request_exception=False)

    response = client.generic(
        "POST",
        "/graphql/",
        encoded(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    _no_server_error(response)


# --- websocket messages ------------------------------------------------------------------------

ws_messages = st.one_of(
    any_json,
    json_texts().map(lambda payload: json_object({'"type"': '"connection_init"', '"payload"': payload})),
    st.fixed_dictionaries({"id": any_json, "payload": any_json}).map(
        lambda fields: json_object({'"type"': '"subscribe"', **{json.dumps(k): v for k, v in fields.items()}})
    ),
)


async def _websocket_answers(messages: list[str]) -> list[dict]:
    """What the server sends back to a connection_init and then `messages`, up to a close."""
    communicator = GraphQLWebsocketCommunicator(application, path="/graphql/")
    connected, _ = await communicator.connect()
    assert connected
    answers = []
    for text in ['{"type": "connection_init"}', *messages]:
        await communicator.send_to(text_data=text)
        if await communicator.receive_nothing(timeout=0.05):
            continue
        answers.append(await communicator.receive_output(timeout=5))
        if answers[-1]["type"] == "websocket.close":
            break
    await communicator.disconnect()
    return answers


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(parent=FUZZ, max_examples=100)
@given(message=ws_messages)
def test_no_websocket_message_kills_the_consumer(message):
    answers = async_to_sync(_websocket_answers)([message])

    assert answers[0] == {"type": "websocket.send", "text": '{"type":"connection_ack"}'}
    closes = [answer for answer in answers if answer["type"] == "websocket.close"]
    assert all(400 <= close["code"] - 4000 < 500 for close in closes), closes


# --- cursors ------------------------------------------------------------------------------------

PAGE = "query($cursor: String) { me { payments(after: $cursor, first: 5) { edges { node { id } } } } }"
cursors = st.one_of(
    st.text(max_size=200),
    any_json.map(lambda text: base64.b64encode(encoded(text)).decode()),
    any_json.map(lambda text: base64.b64encode(b"orderedcursor:" + encoded(text)).decode()),
    st.lists(
        st.one_of(st.none(), st.text(max_size=40), st.datetimes(timezones=st.timezones()).map(str)), max_size=3
    ).map(lambda values: base64.b64encode(b"orderedcursor:" + json.dumps(values).encode()).decode()),
)


@FUZZ
@given(cursor=cursors)
def test_no_cursor_gets_a_500_or_an_unexpected_error(token, cursor):
    body = json.dumps({"query": PAGE, "variables": {"cursor": cursor}})

    response = Client(raise_request_exception=False).post(
        "/graphql/", body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )

    _no_server_error(response)
    answer = response.json()
    assert answer.get("errors") is None or [error["extensions"]["code"] for error in answer["errors"]] == [
        "BAD_USER_INPUT"
    ]


# --- token claims -------------------------------------------------------------------------------

claim_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from([10**20, 2**63, -(10**20)]),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)
claims = st.fixed_dictionaries(
    {
        "sub": st.one_of(st.just(str(uuid.uuid4())), claim_values),
        "exp": st.one_of(
            st.integers(min_value=2_000_000_000), st.integers().map(str), st.floats(min_value=2e9), claim_values
        ),
    },
    optional={"email": claim_values} | dict.fromkeys(("iat", "nbf", "aud", "iss", "jti"), claim_values),
)


def _signed(claims: dict, secret: str) -> str:
    """HS256 by hand: PyJWT's encode refuses some odd claims that a token may still carry."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    signing_input = f"{part(header)}.{part(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


@FUZZ
@given(claims=claims)
def test_any_claims_in_a_signed_token_give_a_viewer_or_an_authentication_error(settings, claims):
    token = _signed(claims, settings.JWT_SECRET)

    try:
        viewer = viewer_from_token(token)
    except AuthenticationError:
        return
    assert viewer.expires_at is not None
