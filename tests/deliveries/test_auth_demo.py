"""The local run's demo Auth service (beside the sandbox, /auth-demo/) receives billing's events,
verifies them, shows them on its page, and fails on demand like a real receiver."""

import uuid

import pytest
import requests

from billing.events import BillingEventType
from billing.models import BillingEvent
from deliveries import tasks
from deliveries.models import Delivery, DeliveryStatus, Endpoint
from tests.deliveries.receiver import new_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(sandbox):
    secret = new_secret()
    sandbox.app.auth_demo.secret = secret
    endpoint = Endpoint.objects.create(
        name="auth-demo", url=f"{sandbox.url}/auth-demo/", secret=secret, event_types=["payment.succeeded"]
    )
    yield sandbox, endpoint
    sandbox.app.auth_demo.secret = None


def switch(sandbox, **fault) -> requests.Response:
    auth = (sandbox.config.shop_id, sandbox.config.secret_key)
    return requests.post(f"{sandbox.url}/auth-demo/faults", json=fault, auth=auth, timeout=5)


def test_the_demo_verifies_and_shows_what_it_received(demo):
    sandbox, _ = demo
    viewer_id = uuid.uuid4()
    BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=viewer_id, payload={"amount": "1"})

    assert tasks.deliver_events()["delivered"] == 1

    page = requests.get(f"{sandbox.url}/auth-demo/", timeout=5)
    assert page.status_code == 200
    assert "payment.succeeded" in page.text
    assert str(viewer_id) in page.text
    assert ">yes<" in page.text


def test_a_forged_message_is_refused_and_shown_unverified(demo):
    sandbox, _ = demo
    headers = {"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}

    answer = requests.post(f"{sandbox.url}/auth-demo/", data=b"{}", headers=headers, timeout=5)

    assert answer.status_code == 401
    assert "no: " in requests.get(f"{sandbox.url}/auth-demo/", timeout=5).text


@pytest.mark.parametrize(("effect", "error"), [("error_500", "HTTP 500"), ("down", "ConnectionError")])
def test_fault_switches_make_deliveries_fail_then_succeed(demo, effect, error):
    sandbox, _ = demo
    assert switch(sandbox, effect=effect, times=1).status_code == 200
    BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=uuid.uuid4(), payload={})

    assert tasks.deliver_events()["retrying"] == 1
    assert error in Delivery.objects.get().last_error
    Delivery.objects.update(next_attempt_at=Delivery.objects.get().created_at)
    assert tasks.send_deliveries()["delivered"] == 1


def test_the_410_switch_disables_the_endpoint(demo):
    sandbox, endpoint = demo
    assert switch(sandbox, effect="gone_410").status_code == 200
    BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=uuid.uuid4(), payload={})

    tasks.deliver_events()

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_fault_switches_need_the_shop_credentials_and_a_known_effect(demo):
    sandbox, _ = demo
    assert requests.post(f"{sandbox.url}/auth-demo/faults", json={"effect": "down"}, timeout=5).status_code == 401
    assert switch(sandbox, effect="explode").status_code == 400
    assert switch(sandbox, effect="slow", delay=-1).status_code == 400
    auth = (sandbox.config.shop_id, sandbox.config.secret_key)
    assert requests.delete(f"{sandbox.url}/auth-demo/faults", auth=auth, timeout=5).json() == {}
