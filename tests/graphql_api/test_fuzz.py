"""Hypothesis throws arbitrary requests at `/graphql/`: whatever comes in, the answer is a 4xx or a
GraphQL answer, never a 500 and never a masked "Unexpected error." (a client's mistake told as ours).
Cursors and token claims get the same treatment (strategies and settings in tests/fuzzing.py)."""

import base64
import hashlib
import hmac
import json
import uuid
from collections import Counter

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.relay import to_base64

from billing.models import BillingEvent, ClientRequest, Payment, PaymentMethod, Refund, Subscription
from config.asgi import application
from graphql_api.auth import AuthenticationError, Viewer, viewer_from_token
from tests.fuzzing import FUZZ, content_types, deep_nesting, encoded, json_atoms, json_object, json_texts, mostly
from tests.graphql_api.operations import OPERATIONS, relay_ids_of_rows
from tests.helpers import make_token, subscribe_and_pay

pytestmark = pytest.mark.django_db

# Relay ids of our types around arbitrary primary keys, for the `id` arguments.
relay_ids = st.tuples(st.sampled_from(["Plan", "Payment", "Subscription", "PaymentMethod"]), st.text(max_size=40)).map(
    lambda type_and_pk: json.dumps(to_base64(*type_and_pk))
)
any_json = st.one_of(json_texts(st.one_of(json_atoms, relay_ids)), deep_nesting)

# Real operations and arbitrary text, for the bodies; their variables get a test of their own below.
queries = st.one_of(
    st.sampled_from([operation.query for operation in OPERATIONS.values()]).map(json.dumps),
    st.text(max_size=200).map(json.dumps),
    any_json,
)
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


# --- variables of real operations ----------------------------------------------------------------

# Payload error codes that report YooKassa's answer: the request was valid and billing recorded it.
PROVIDER_OUTCOMES = {
    "PROVIDER_UNAVAILABLE",
    "PROVIDER_OUTCOME_UNKNOWN",
    "PROVIDER_REJECTED",
    "PROVIDER_OBJECT_NOT_FOUND",
    "REFUND_CANCELED",
}
BILLING_MODELS = [Subscription, Payment, Refund, PaymentMethod, ClientRequest, BillingEvent]


@pytest.fixture
def known_ids(viewer, plans, active, sandbox):
    """The viewer's active subscription (its payment, its card) and another viewer's, as relay ids."""
    other = subscribe_and_pay(Viewer(id=uuid.uuid4(), email="other@example.com"), plans["premium-monthly"])
    return relay_ids_of_rows(plans.values(), [active, other])


def _billing_rows() -> dict:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in BILLING_MODELS}


def _post(query: str, variables: dict, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # ensure_ascii: lone surrogates go as \ud800 escapes, as a JavaScript client would send them.
    body = json.dumps({"query": query, "variables": variables})
    client = Client(raise_request_exception=False)
    return client.post("/graphql/", body, content_type="application/json", headers=headers)


def _reached_a_resolver(answer: dict) -> bool:
    """A resolver answered: with data (a payload, typed errors included), or with null and no error
    (an id of no row of the viewer's). Errors at a path (an unparsable id, a page too large) do not count."""
    data = answer.get("data") or {}
    return any(value is not None for value in data.values()) or (bool(data) and not answer.get("errors"))


def _succeeded(answer: dict) -> bool:
    """A mutation's answer that says it did (or recorded) something."""
    if answer.get("errors") or not answer.get("data"):
        return False
    (payload,) = answer["data"].values()
    codes = {error["code"] for error in payload["errors"]}
    return not codes or bool(codes & PROVIDER_OUTCOMES)


def test_no_variables_of_a_real_operation_get_a_500_or_change_anything_when_refused(known_ids, viewer, sandbox):
    reached = Counter()

    # The viewer with an active subscription, or one who has none (so that checkouts get through).
    viewer_ids = [viewer.id, uuid.uuid4()]

    @hypothesis_settings(parent=FUZZ, max_examples=300)
    @given(
        data=st.data(),
        name=st.sampled_from(sorted(OPERATIONS)),
        viewer_id=st.sampled_from(viewer_ids),
        email=st.sampled_from(["viewer@example.com", None]),
    )
    def send(data, name, viewer_id, email):
        # Given one of the schema's operations, variables by its real names (mostly of the right
        # types, but hostile), and a valid token of a viewer (with or without an email)
        operation = OPERATIONS[name]
        variables = data.draw(mostly(operation.well_typed(known_ids), operation.any_typed(known_ids)), "variables")
        # Each example starts from the same rows, and leaves them as they were for the next.
        with transaction.atomic():
            before = _billing_rows()

            # When it is sent
            response = _post(operation.query, variables, make_token(viewer_id, email))

            # Then no 500, and whatever was refused changed nothing
            after = _billing_rows()
            transaction.set_rollback(True)
        _no_server_error(response)
        # Not 200: refused before GraphQL (a lone surrogate in the body, say), as a 4xx.
        answer = response.json() if response.status_code == 200 else {}
        if not (operation.is_mutation and _succeeded(answer)):
            assert after == before, answer
        reached["examples"] += 1
        reached["resolver"] += _reached_a_resolver(answer)

    send()

    # A floor, so that the fuzz cannot go back to testing only the variable validator unnoticed.
    assert reached["resolver"] / reached["examples"] >= 0.5, reached


@hypothesis_settings(parent=FUZZ, max_examples=60)
@given(data=st.data(), name=st.sampled_from(sorted(OPERATIONS)))
def test_real_operations_without_a_valid_token_are_refused_and_change_nothing(known_ids, viewer, data, name):
    # Given an operation with variables as above, and no token, or one of the viewer's expired
    operation = OPERATIONS[name]
    variables = data.draw(operation.well_typed(known_ids), label="variables")
    token = data.draw(st.sampled_from([None, make_token(viewer.id, expires_in=-60)]), label="token")
    before = _billing_rows()

    # When it is sent
    response = _post(operation.query, variables, token)

    # Then it is refused as unauthenticated, and nothing changed
    _no_server_error(response)
    assert _billing_rows() == before
    answer = response.json() if response.status_code == 200 else {}
    assert not _reached_a_resolver(answer), answer


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
