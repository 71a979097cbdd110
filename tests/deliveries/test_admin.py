"""Operators read deliveries with their attempts, re-send them, replay a range to an endpoint, and
enable an endpoint a 410 disabled; secrets are never shown back."""

import uuid

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from billing.events import BillingEventType
from billing.models import BillingEvent
from deliveries import tasks
from deliveries.models import Delivery, DeliveryStatus, Endpoint
from tests.deliveries.receiver import new_secret

pytestmark = pytest.mark.django_db

DELIVERIES = "/admin/deliveries/delivery/"
ENDPOINTS = "/admin/deliveries/endpoint/"


@pytest.fixture
def delivered(endpoint, receiver) -> Delivery:
    BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=uuid.uuid4(), payload={})
    tasks.deliver_events()
    return Delivery.objects.get()


def test_the_deliveries_list_filters_and_shows_attempts(admin_client, delivered, endpoint):
    pages = [
        admin_client.get(DELIVERIES),
        admin_client.get(DELIVERIES, {"status__exact": "delivered"}),
        admin_client.get(DELIVERIES, {"endpoint__id__exact": endpoint.pk}),
        admin_client.get(DELIVERIES, {"event_type": "payment.succeeded"}),
        admin_client.get(DELIVERIES, {"q": str(delivered.viewer_id)}),
    ]
    detail = admin_client.get(f"{DELIVERIES}{delivered.pk}/change/")

    assert [page.status_code for page in pages] == [200] * 5
    assert all(list(page.context["cl"].result_list) == [delivered] for page in pages)
    assert detail.status_code == 200
    assert b"ok" in detail.content  # the receiver's answer, inline


def test_resend_now_makes_the_selected_due_again(admin_client, delivered, receiver):
    response = admin_client.post(DELIVERIES, {"action": "resend_now", ACTION_CHECKBOX_NAME: [delivered.pk]})

    assert response.status_code == 302
    delivered.refresh_from_db()
    assert delivered.status == DeliveryStatus.PENDING
    assert tasks.send_deliveries()["delivered"] == 1
    assert len(receiver.requests) == 2


def test_the_endpoint_page_masks_the_secret(admin_client, endpoint):
    listing = admin_client.get(ENDPOINTS)
    detail = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert endpoint.secret.encode() not in listing.content + detail.content
    assert f"whsec_…{endpoint.secret[-4:]}" in listing.content.decode()


def test_an_endpoint_is_added_and_changed_keeping_its_secret(admin_client, receiver):
    secret = new_secret()
    added = admin_client.post(
        f"{ENDPOINTS}add/",
        {
            "name": "search",
            "url": receiver.url,
            "secret": secret,
            "event_types": ["payment.succeeded"],
            "enabled": "on",
        },
    )
    endpoint = Endpoint.objects.get(name="search")
    changed = admin_client.post(
        f"{ENDPOINTS}{endpoint.pk}/change/",
        {"name": "search", "url": receiver.url, "secret": "", "event_types": ["refund.succeeded"], "enabled": "on"},
    )
    refused = admin_client.post(
        f"{ENDPOINTS}add/", {"name": "bad", "url": receiver.url, "secret": "nope", "event_types": ["no.such"]}
    )

    assert added.status_code == changed.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == secret
    assert endpoint.event_types == ["refund.succeeded"]
    assert refused.status_code == 200
    assert not Endpoint.objects.filter(name="bad").exists()


def test_enable_again_clears_the_reason_and_sends_what_waited(admin_client, endpoint, receiver):
    BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=uuid.uuid4(), payload={})
    receiver.fail_status, receiver.fail_times = 410, 1
    tasks.deliver_events()
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert admin_client.get(ENDPOINTS).status_code == 200

    response = admin_client.post(ENDPOINTS, {"action": "enable_again", ACTION_CHECKBOX_NAME: [endpoint.pk]})

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.disabled_reason == ""
    assert tasks.send_deliveries()["delivered"] == 1


def test_replay_a_range_asks_for_it_then_delivers_it(admin_client, endpoint, receiver):
    events = [
        BillingEvent.objects.create(type=BillingEventType.PAYMENT_SUCCEEDED, viewer_id=uuid.uuid4(), payload={})
        for _ in range(3)
    ]
    tasks.deliver_events()

    form = admin_client.post(ENDPOINTS, {"action": "replay_range", ACTION_CHECKBOX_NAME: [endpoint.pk]})
    empty = admin_client.post(
        ENDPOINTS, {"action": "replay_range", ACTION_CHECKBOX_NAME: [endpoint.pk], "apply": "Replay"}
    )
    done = admin_client.post(
        ENDPOINTS,
        {
            "action": "replay_range",
            ACTION_CHECKBOX_NAME: [endpoint.pk],
            "apply": "Replay",
            "from_id": events[1].id,
            "to_id": events[2].id,
        },
    )

    assert form.status_code == 200
    assert b"Replay events to auth" in form.content
    assert empty.status_code == 200
    assert b"Give a range" in empty.content
    assert done.status_code == 302
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 2
    assert tasks.send_deliveries()["delivered"] == 2
