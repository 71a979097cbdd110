"""Viewers sign in with JWTs from the cinema's Auth service; billing only verifies them.

A missing, expired, badly signed or unsigned token gets a GraphQL error with
`extensions.code = UNAUTHENTICATED` and changes nothing; public fields such as `plans` need no token.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from asgiref.sync import async_to_sync
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from strawberry import relay
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from billing.models import ClientRequest, Payment, Subscription
from config.asgi import application
from tests.helpers import make_token

ME_QUERY = "{ me { id email } }"
PLANS_QUERY = "{ plans { id code } }"
SUBSCRIBE_MUTATION = """
mutation Subscribe($input: SubscribeInput!) {
  subscribe(input: $input) { payment { id } subscription { id } errors { code message field } }
}
"""
PAYMENT_QUERY = "query Payment($id: ID!) { payment(id: $id) { id } }"

SIGN_IN = "Sign in: send 'Authorization: Bearer <token>'."
NOT_BEARER = "The Authorization header must be 'Bearer <token>'."
NOT_VALID = "The token is not valid."
EXPIRED = "The token has expired: sign in again."
NOT_A_VIEWER = "The token's subject is not a viewer id."

AUDIENCE = "cinema-billing"
ISSUER = "https://auth.cinema.example"


def _post(query: str, variables: dict | None = None, *, authorization: str | None = None) -> dict:
    """POST to /graphql/ with the Authorization header exactly as given (or none)."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = Client().post(
        "/graphql/", {"query": query, "variables": variables or {}}, content_type="application/json", headers=headers
    )
    assert response.status_code == 200, response.content
    return response.json()


def _unauthenticated(message: str, *, field: str = "me", column: int = 3, line: int = 1, data=None) -> dict:
    """The whole answer when `field` needs a viewer and the request has none: data is null unless given."""
    return {
        "data": data,
        "errors": [
            {
                "message": message,
                "locations": [{"line": line, "column": column}],
                "path": [field],
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ],
    }


def _subscribe_input(graphql, plan_code: str) -> dict:
    """SubscribeInput for the plan with `plan_code`, its relay id read from the public `plans` query."""
    [plan_id] = [plan["id"] for plan in graphql.execute(PLANS_QUERY)["data"]["plans"] if plan["code"] == plan_code]
    return {"planId": plan_id, "returnUrl": "https://cinema.example/return", "idempotencyKey": "subscribe-1"}


def _claims(viewer, *, expires_in: int = 3600, **claims) -> dict:
    return {"sub": str(viewer.id), "email": viewer.email, "exp": _timestamp(expires_in), **claims}


def _timestamp(seconds_from_now: int) -> int:
    return int((datetime.now(UTC) + timedelta(seconds=seconds_from_now)).timestamp())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token_by_hand(header: dict, claims: dict, hmac_key: bytes | None) -> str:
    """A JWT built without PyJWT: HMAC-SHA256 over `header.payload` with `hmac_key`, or no signature at all."""
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


@pytest.fixture(scope="module")
def rsa_private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rs256(settings, rsa_private_key) -> str:
    """The server configured for RS256 with the Auth service's public key; returns the private key PEM."""
    settings.JWT_PUBLIC_KEY = (
        rsa_private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings.JWT_ALGORITHM = "RS256"
    return rsa_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def audience_and_issuer(settings):
    settings.JWT_AUDIENCE = AUDIENCE
    settings.JWT_ISSUER = ISSUER


# --- Over HTTP: who the viewer is ---------------------------------------------------------------


def test_plans_need_no_token(graphql, plans):
    result = graphql.execute("{ plans { code } }")

    assert result == {
        "data": {"plans": [{"code": "basic-monthly"}, {"code": "premium-monthly"}, {"code": "premium-yearly"}]}
    }


def test_me_is_the_viewer_named_by_a_valid_token(graphql, viewer, token):
    result = graphql.execute(ME_QUERY, token=token)

    assert result == {"data": {"me": {"id": str(viewer.id), "email": "viewer@example.com"}}}


def test_me_has_no_email_when_the_token_has_no_email_claim(graphql, viewer):
    token = make_token(viewer.id, None)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == {"data": {"me": {"id": str(viewer.id), "email": None}}}


@pytest.mark.parametrize(
    "email",
    [
        "v" * 243 + "@example.com",  # 255 characters: more than an email column holds
        "viewer\x00@example.com",
        "viewer@example.com\n",
        "not an email",
        "@example.com",
        "viewer@",
        42,
        ["viewer@example.com"],
    ],
    ids=["overlong", "nul", "newline", "no-at", "no-local-part", "no-domain", "number", "list"],
)
def test_me_has_no_email_when_the_email_claim_is_not_a_usable_address(graphql, viewer, email):
    token = make_token(viewer.id, email)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == {"data": {"me": {"id": str(viewer.id), "email": None}}}


def test_an_email_of_254_characters_is_kept(graphql, viewer):
    email = "v" * 242 + "@example.com"

    result = graphql.execute(ME_QUERY, token=make_token(viewer.id, email))

    assert result == {"data": {"me": {"id": str(viewer.id), "email": email}}}


def test_subscribe_with_an_overlong_email_claim_starts_a_checkout_without_the_email(graphql, viewer, plans, sandbox):
    token = make_token(viewer.id, "v" * 243 + "@example.com")

    result = graphql.execute(SUBSCRIBE_MUTATION, {"input": _subscribe_input(graphql, "basic-monthly")}, token=token)

    assert "errors" not in result
    assert result["data"]["subscribe"]["errors"] == []
    assert Subscription.objects.get().viewer_email == ""


def test_me_without_an_authorization_header_asks_to_sign_in():
    result = _post(ME_QUERY)

    assert result == _unauthenticated(SIGN_IN)


def test_me_with_basic_authorization_is_refused():
    result = _post(ME_QUERY, authorization="Basic xyz")

    assert result == _unauthenticated(NOT_BEARER)


def test_me_with_an_empty_bearer_token_is_refused():
    result = _post(ME_QUERY, authorization="Bearer ")

    assert result == _unauthenticated(NOT_BEARER)


def test_me_with_a_garbage_token_is_refused():
    result = _post(ME_QUERY, authorization="Bearer not-a-jwt-at-all")

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_an_expired_token_asks_to_sign_in_again(graphql, viewer):
    token = make_token(viewer.id, viewer.email, expires_in=-120)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(EXPIRED)


def test_me_with_a_token_signed_with_another_secret_is_refused(graphql, viewer):
    token = make_token(viewer.id, viewer.email, key="another-secret-that-is-long-enough-for-hs256")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_an_unsigned_alg_none_token_is_refused(graphql, viewer):
    token = _token_by_hand({"alg": "none", "typ": "JWT"}, _claims(viewer), hmac_key=None)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_an_alg_none_token_from_pyjwt_is_refused(graphql, viewer):
    token = jwt.encode(_claims(viewer), None, algorithm="none")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_a_token_without_exp_is_refused(graphql, viewer, settings):
    claims = {"sub": str(viewer.id), "email": viewer.email}
    token = _token_by_hand({"alg": "HS256", "typ": "JWT"}, claims, hmac_key=settings.JWT_SECRET.encode())

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_a_token_without_sub_is_refused(graphql, viewer, settings):
    claims = {"email": viewer.email, "exp": _timestamp(3600)}
    token = _token_by_hand({"alg": "HS256", "typ": "JWT"}, claims, hmac_key=settings.JWT_SECRET.encode())

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_me_with_a_sub_that_is_not_a_uuid_is_refused(graphql):
    token = make_token("viewer-42", "viewer@example.com")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_A_VIEWER)


def test_me_with_a_numeric_sub_is_refused(graphql, viewer, settings):
    claims = _claims(viewer, sub=42)
    token = _token_by_hand({"alg": "HS256", "typ": "JWT"}, claims, hmac_key=settings.JWT_SECRET.encode())

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


# --- Odd claims in a correctly signed token: refused, never a 500 --------------------------------

YEAR_10000 = 253_402_300_800
# Each claim as the Auth service never sends it, in a token signed with the right secret.
ODD_CLAIMS = {
    "exp a numeric string": {"exp": str(_timestamp(3600))},
    "exp 10^20": {"exp": 10**20},
    "exp in year 10000": {"exp": YEAR_10000},
    "exp a float past datetime": {"exp": 1e300},
    "sub a number": {"sub": 42},
    "sub a list": {"sub": ["6f1c1b5e-3f47-4d43-9b43-000000000000"]},
    "sub an object": {"sub": {"id": "6f1c1b5e-3f47-4d43-9b43-000000000000"}},
    "iat a string": {"iat": "yesterday"},
    "iat 10^20": {"iat": 10**20},
    "nbf a string": {"nbf": "now"},
    "nbf 10^20": {"nbf": 10**20},
}


def _signed_with_odd_claims(viewer, odd: dict, settings) -> str:
    return _token_by_hand({"alg": "HS256", "typ": "JWT"}, _claims(viewer, **odd), hmac_key=settings.JWT_SECRET.encode())


@pytest.mark.django_db
@pytest.mark.parametrize("odd", ODD_CLAIMS.values(), ids=ODD_CLAIMS.keys())
def test_me_with_an_odd_claim_in_a_signed_token_is_refused(graphql, viewer, settings, odd):
    token = _signed_with_odd_claims(viewer, odd, settings)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


@pytest.mark.parametrize("odd", [ODD_CLAIMS["exp 10^20"], ODD_CLAIMS["exp in year 10000"]], ids=["10^20", "year 10000"])
def test_subscribe_with_an_exp_past_any_date_is_refused_and_changes_nothing(
    graphql, viewer, plans, sandbox, settings, odd
):
    subscribe_input = _subscribe_input(graphql, "basic-monthly")
    token = _signed_with_odd_claims(viewer, odd, settings)

    result = graphql.execute(SUBSCRIBE_MUTATION, {"input": subscribe_input}, token=token)

    assert result == _unauthenticated(NOT_VALID, field="subscribe", line=3)
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert ClientRequest.objects.count() == 0
    assert sandbox.store.count_payments() == 0


# --- RS256: the Auth service's public key -------------------------------------------------------


def test_rs256_token_signed_with_the_private_key_is_accepted(graphql, viewer, rs256):
    token = make_token(viewer.id, viewer.email, key=rs256, algorithm="RS256")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == {"data": {"me": {"id": str(viewer.id), "email": "viewer@example.com"}}}


def test_rs256_server_refuses_hs256_token_signed_with_the_public_key_as_hmac_secret(graphql, viewer, rs256, settings):
    header = {"alg": "HS256", "typ": "JWT"}
    token = _token_by_hand(header, _claims(viewer), hmac_key=settings.JWT_PUBLIC_KEY.encode())

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_rs256_server_refuses_hs256_token_signed_with_jwt_secret(graphql, viewer, rs256, settings):
    token = make_token(viewer.id, viewer.email, key=settings.JWT_SECRET, algorithm="HS256")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_rs256_server_refuses_token_signed_with_another_private_key(graphql, viewer, rs256):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = make_token(viewer.id, viewer.email, key=other_key, algorithm="RS256")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


# --- Audience and issuer ------------------------------------------------------------------------


@pytest.mark.usefixtures("audience_and_issuer")
def test_token_for_the_configured_audience_and_issuer_is_accepted(graphql, viewer):
    token = make_token(viewer.id, viewer.email, aud=AUDIENCE, iss=ISSUER)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == {"data": {"me": {"id": str(viewer.id), "email": "viewer@example.com"}}}


@pytest.mark.usefixtures("audience_and_issuer")
def test_token_for_another_audience_is_refused(graphql, viewer):
    token = make_token(viewer.id, viewer.email, aud="cinema-catalog", iss=ISSUER)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


@pytest.mark.usefixtures("audience_and_issuer")
def test_token_without_audience_is_refused_when_one_is_configured(graphql, viewer):
    token = make_token(viewer.id, viewer.email, iss=ISSUER)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


@pytest.mark.usefixtures("audience_and_issuer")
def test_token_from_another_issuer_is_refused(graphql, viewer):
    token = make_token(viewer.id, viewer.email, aud=AUDIENCE, iss="https://evil.example")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


@pytest.mark.usefixtures("audience_and_issuer")
def test_token_without_issuer_is_refused_when_one_is_configured(graphql, viewer):
    token = make_token(viewer.id, viewer.email, aud=AUDIENCE)

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


def test_token_meant_for_an_audience_is_refused_when_none_is_configured(graphql, viewer, settings):
    settings.JWT_AUDIENCE = None
    token = make_token(viewer.id, viewer.email, aud="cinema-catalog")

    result = graphql.execute(ME_QUERY, token=token)

    assert result == _unauthenticated(NOT_VALID)


# --- A bad token changes nothing ----------------------------------------------------------------


def test_subscribe_with_a_forged_token_is_refused_and_changes_nothing(graphql, viewer, plans, sandbox):
    forged = make_token(viewer.id, viewer.email, key="another-secret-that-is-long-enough-for-hs256")
    subscribe_input = _subscribe_input(graphql, "basic-monthly")

    result = graphql.execute(SUBSCRIBE_MUTATION, {"input": subscribe_input}, token=forged)

    assert result == _unauthenticated(NOT_VALID, field="subscribe", line=3)
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert ClientRequest.objects.count() == 0
    assert sandbox.store.count_payments() == 0


def test_subscribe_with_a_valid_token_starts_a_checkout(graphql, token, plans, sandbox):
    subscribe_input = _subscribe_input(graphql, "basic-monthly")

    result = graphql.execute(SUBSCRIBE_MUTATION, {"input": subscribe_input}, token=token)

    assert "errors" not in result
    assert result["data"]["subscribe"]["errors"] == []
    assert Subscription.objects.count() == 1
    assert Payment.objects.count() == 1
    assert ClientRequest.objects.count() == 1
    assert sandbox.store.count_payments() == 1


def test_subscribe_without_a_token_is_refused_and_changes_nothing(graphql, plans, sandbox):
    subscribe_input = _subscribe_input(graphql, "basic-monthly")

    result = graphql.execute(SUBSCRIBE_MUTATION, {"input": subscribe_input})

    assert result == _unauthenticated(SIGN_IN, field="subscribe", line=3)
    assert Subscription.objects.count() == 0
    assert Payment.objects.count() == 0
    assert ClientRequest.objects.count() == 0
    assert sandbox.store.count_payments() == 0


@pytest.mark.django_db
def test_payment_with_an_expired_token_is_refused(graphql, viewer):
    expired = make_token(viewer.id, viewer.email, expires_in=-120)
    payment_id = str(relay.GlobalID("Payment", str(uuid.uuid4())))

    result = graphql.execute(PAYMENT_QUERY, {"id": payment_id}, token=expired)

    assert result == _unauthenticated(EXPIRED, field="payment", column=27, data={"payment": None})


# --- Over websockets: the token comes in connection_init's payload ------------------------------


async def _run_over_websocket(query: str, connection_params: dict) -> list:
    async with GraphQLWebsocketCommunicator(
        application, path="/graphql/", connection_params=connection_params
    ) as client:
        return [result async for result in client.subscribe(query)]


async def _connection_init_answer(connection_params: dict) -> dict:
    """What the server sends back to `connection_init`: the ack, or the websocket's close frame."""
    communicator = GraphQLWebsocketCommunicator(application, path="/graphql/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "connection_init", "payload": connection_params})
    answer = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return answer


@pytest.mark.django_db(transaction=True)
def test_websocket_with_a_valid_token_knows_the_viewer(viewer, token):
    [result] = async_to_sync(_run_over_websocket)("{ me { id } }", {"authorization": f"Bearer {token}"})

    assert result.errors is None
    assert result.data == {"me": {"id": str(viewer.id)}}


@pytest.mark.django_db(transaction=True)
def test_a_websocket_stops_knowing_the_viewer_when_the_token_expires(viewer, monkeypatch):
    monkeypatch.setattr("graphql_api.auth.CLOCK_SKEW", 0)
    short_lived = make_token(viewer.id, viewer.email, expires_in=1)

    async def before_and_after_expiry():
        async with GraphQLWebsocketCommunicator(
            application, path="/graphql/", connection_params={"authorization": f"Bearer {short_lived}"}
        ) as client:
            before = [result async for result in client.subscribe("{ me { id } }")]
            await asyncio.sleep(1.5)
            after = [result async for result in client.subscribe("{ me { id } }")]
            return before, after

    [before], [after] = async_to_sync(before_and_after_expiry)()

    assert before.data == {"me": {"id": str(viewer.id)}}
    assert after.errors[0].message == EXPIRED
    assert after.errors[0].extensions == {"code": "UNAUTHENTICATED"}


@pytest.mark.django_db(transaction=True)
def test_websocket_with_a_valid_token_is_acknowledged(token):
    answer = async_to_sync(_connection_init_answer)({"authorization": f"Bearer {token}"})

    assert answer["type"] == "websocket.send"
    assert json.loads(answer["text"]) == {"type": "connection_ack"}


@pytest.mark.django_db(transaction=True)
def test_websocket_with_a_forged_token_is_refused(viewer):
    forged = make_token(viewer.id, viewer.email, key="another-secret-that-is-long-enough-for-hs256")

    answer = async_to_sync(_connection_init_answer)({"authorization": f"Bearer {forged}"})

    assert answer == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.django_db(transaction=True)
def test_websocket_with_an_expired_token_is_refused(viewer):
    expired = make_token(viewer.id, viewer.email, expires_in=-120)

    answer = async_to_sync(_connection_init_answer)({"authorization": f"Bearer {expired}"})

    assert answer == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("odd", ODD_CLAIMS.values(), ids=ODD_CLAIMS.keys())
def test_websocket_with_an_odd_claim_in_a_signed_token_is_refused(viewer, settings, odd):
    token = _signed_with_odd_claims(viewer, odd, settings)

    answer = async_to_sync(_connection_init_answer)({"authorization": f"Bearer {token}"})

    assert answer == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.django_db(transaction=True)
def test_websocket_with_a_basic_authorization_is_refused():
    answer = async_to_sync(_connection_init_answer)({"authorization": "Basic xyz"})

    assert answer == {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


@pytest.mark.django_db(transaction=True)
def test_websocket_without_a_token_serves_plans(plans):
    [result] = async_to_sync(_run_over_websocket)("{ plans { code } }", {})

    assert result.errors is None
    assert result.data == {
        "plans": [{"code": "basic-monthly"}, {"code": "premium-monthly"}, {"code": "premium-yearly"}]
    }


@pytest.mark.django_db(transaction=True)
def test_websocket_without_a_token_refuses_me():
    [result] = async_to_sync(_run_over_websocket)(ME_QUERY, {})

    assert result.data is None
    assert [(error.message, error.extensions, error.path) for error in result.errors] == [
        (SIGN_IN, {"code": "UNAUTHENTICATED"}, ["me"])
    ]
