import json
import os
import uuid

import pytest
from django.conf import settings
from django.db import DatabaseError, connections
from yookassa import Configuration

from billing.models import Payment, Refund
from graphql_api.auth import Viewer
from mail import receivers as mail_receivers
from plans.demo import plan_load_demo_catalog
from sandbox.config import SandboxConfig, utc_now
from sandbox.server import SandboxServer
from tests.helpers import GraphQLClient, SandboxCall, SeenAtYooKassa, make_token, subscribe_and_pay


def _on_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config, items):
    """Row locks and concurrency need PostgreSQL: skip those tests on SQLite, unless told not to."""
    if _on_postgres():
        return
    if os.environ.get("REQUIRE_POSTGRES"):
        pytest.exit("REQUIRE_POSTGRES is set but DATABASE_URL is not a PostgreSQL database.", returncode=2)
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_mail_debounce(monkeypatch):
    """Mail's debounce leaves a failed cache alone for 30 s, process-wide: a test that froze Redis
    would otherwise make the next tests' deliveries ignore the cache (and their held-back key)."""
    monkeypatch.setattr(mail_receivers, "_debounce", mail_receivers._Debounce())


@pytest.fixture(scope="session")
def sandbox_server():
    """One sandbox for the session, on a free port, with a day of notification retries in ~0.1 s."""
    config = SandboxConfig(port=0, notification_time_scale=0.001, tick_interval=0.02, notification_timeout=2)
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The sandbox, emptied, with the service's YooKassa settings pointed at it."""
    sandbox_server.reset()
    sandbox_server.config.notification_url = None
    sandbox_server.config.clock = utc_now
    settings.YOOKASSA_API_URL = sandbox_server.api_url
    settings.YOOKASSA_SHOP_ID = sandbox_server.config.shop_id
    settings.YOOKASSA_SECRET_KEY = sandbox_server.config.secret_key
    yield sandbox_server
    # No webhook may still be at work in the service when the test's database is emptied.
    sandbox_server.config.notification_url = None
    assert sandbox_server.notifier.wait_idle(timeout=10), "a notification was still being delivered"
    sandbox_server.faults.clear()
    sandbox_server.config.clock = utc_now


@pytest.fixture
def seen_at_yookassa(sandbox) -> list[SeenAtYooKassa]:
    """For each create call the sandbox receives, the row with the call's Idempotence-Key as it is
    at that very moment to another database session: the sandbox's thread has a connection of its
    own, so it finds the row only if it is committed. For `transaction=True` tests."""
    models = {"payments.create": Payment, "refunds.create": Refund}
    seen: list[SeenAtYooKassa] = []

    def look(kind, request) -> None:
        if kind not in models:
            return
        key = request.headers.get("Idempotence-Key")
        try:
            status = models[kind].objects.filter(idempotence_key=key).values_list("status", flat=True).first()
        except DatabaseError:  # SQLite's shared in-memory test database locks a table being written
            status = None
        finally:
            connections.close_all()
        seen.append(SeenAtYooKassa(kind, key, status))

    sandbox.app.listeners.append(look)
    yield seen
    sandbox.app.listeners.remove(look)


@pytest.fixture
def sandbox_calls(sandbox) -> list[SandboxCall]:
    """Each API request the sandbox receives, in order."""
    calls: list[SandboxCall] = []

    def record(kind, request) -> None:
        calls.append(SandboxCall(kind, json.loads(request.body) if request.body else None))

    sandbox.app.listeners.append(record)
    yield calls
    sandbox.app.listeners.remove(record)


@pytest.fixture
def sdk(sandbox):
    """The official SDK's global configuration, pointed at the sandbox."""
    Configuration.configure(sandbox.config.shop_id, sandbox.config.secret_key, api_url=sandbox.api_url)
    yield
    Configuration.configure(None, None)


@pytest.fixture
def viewer() -> Viewer:
    return Viewer(id=uuid.uuid4(), email="viewer@example.com")


@pytest.fixture
def token(viewer) -> str:
    return make_token(viewer.id, viewer.email)


@pytest.fixture
def plans(db):
    """The demo catalog: basic-monthly, premium-monthly, premium-yearly."""
    return {plan.code: plan for plan in plan_load_demo_catalog()}


@pytest.fixture
def plan(plans):
    return plans["basic-monthly"]


@pytest.fixture
def active(viewer, plan, sandbox):
    """An active Basic subscription (299.00 RUB a month), just paid with a card YooKassa saved."""
    return subscribe_and_pay(viewer, plan)


@pytest.fixture
def graphql() -> GraphQLClient:
    return GraphQLClient()
