"""The ASGI application: HTTP through Django (GraphQL, admin, health), websockets through channels."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from config.asgi import application
from plans.demo import plan_load_demo_catalog

pytestmark = pytest.mark.django_db(transaction=True)

PLANS_QUERY = "{ plans { code price { amount currency } period { unit count } } }"


def test_graphql_over_http_is_served_by_the_asgi_application():
    plan_load_demo_catalog()
    communicator = HttpCommunicator(
        application,
        "POST",
        "/graphql/",
        body=json.dumps({"query": PLANS_QUERY}).encode(),
        headers=[(b"content-type", b"application/json"), (b"host", b"localhost")],
    )

    response = async_to_sync(communicator.get_response)()

    assert response["status"] == 200
    plans = json.loads(response["body"])["data"]["plans"]
    assert plans[0] == {
        "code": "basic-monthly",
        "price": {"amount": "299.00", "currency": "RUB"},
        "period": {"unit": "MONTH", "count": 1},
    }


def test_graphql_over_websocket_is_served_by_the_asgi_application():
    plan_load_demo_catalog()

    async def run_query():
        async with GraphQLWebsocketCommunicator(application, path="/graphql/") as client:
            return [result async for result in client.subscribe(PLANS_QUERY)]

    [result] = async_to_sync(run_query)()

    assert result.errors is None
    assert [plan["code"] for plan in result.data["plans"]] == ["basic-monthly", "premium-monthly", "premium-yearly"]


def test_a_websocket_from_a_foreign_origin_is_refused():
    async def connect():
        communicator = GraphQLWebsocketCommunicator(
            application, path="/graphql/", headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")]
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(connect)() is False


def test_health_endpoint_checks_the_database():
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_introspection_is_off_outside_debug():
    response = Client().post("/graphql/", {"query": "{ __schema { types { name } } }"}, content_type="application/json")

    assert "introspection has been disabled" in response.json()["errors"][0]["message"]


def test_graphiql_is_not_served_outside_debug():
    response = Client().get("/graphql/", HTTP_ACCEPT="text/html")

    assert b"GraphiQL" not in response.content
