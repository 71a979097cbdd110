"""Billing's events reach a live receiver signed per Standard Webhooks, at least once, in order per
viewer; a receiver that fails is retried, one that answers 410 is disabled, retries end DEAD."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing.events import BillingEventType
from billing.models import BillingEvent
from deliveries import tasks
from deliveries.models import Delivery, DeliveryStatus, Endpoint
from deliveries.services import delivery_create_for_events, delivery_replay, delivery_resend, delivery_send_due
from tests.deliveries.receiver import new_secret


def record(viewer_id, event_type: str, **payload) -> BillingEvent:
    return BillingEvent.objects.create(type=event_type, viewer_id=viewer_id, payload=payload)


def deliver_all(rounds: int = 200) -> None:
    """Run the job until nothing is due (retries come after a few milliseconds in these tests)."""
    import time

    delivery_create_for_events()
    for _ in range(rounds):
        delivery_send_due(time_budget=5)
        if not Delivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__enabled=True).exists():
            return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def test_an_outbox_event_reaches_the_receiver_signed(endpoint, receiver):
    # given an event of a type the endpoint wants, and one it does not want
    viewer_id = uuid.uuid4()
    event = record(viewer_id, BillingEventType.PAYMENT_SUCCEEDED, amount="299.00")
    record(viewer_id, BillingEventType.PAYMENT_CREATED, amount="299.00", currency="RUB")

    # when the job runs
    report = tasks.deliver_events()

    # then the receiver verified one message with the library, carrying the event
    assert report["created"] == 1
    assert report["delivered"] == 1
    (received,) = receiver.requests
    assert received.verified
    assert received.headers["webhook-id"] == f"msg_billing_{event.id}_{endpoint.id}"
    assert received.message == {
        "type": "payment.succeeded",
        "timestamp": event.created_at.isoformat(),
        "data": {"amount": "299.00", "viewer_id": str(viewer_id), "event_id": event.id},
    }
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    (attempt,) = delivery.attempts_made.all()
    assert attempt.status_code == 200
    assert attempt.response_body == "ok"


def test_a_paid_subscription_reaches_the_receiver(endpoint, receiver, active, viewer):
    # given a viewer who paid through the sandbox (the `active` fixture)
    # when the job runs
    deliver_all()

    # then the receiver got the activation and the payment, verified, about that subscription
    by_type = {message["type"]: message for message in receiver.handled}
    assert {"subscription.activated", "payment.succeeded"} <= set(by_type)
    assert all(received.verified for received in receiver.requests)
    assert by_type["subscription.activated"]["data"]["subscription_id"] == str(active.pk)
    assert by_type["payment.succeeded"]["data"]["viewer_id"] == str(viewer.id)
    assert by_type["payment.succeeded"]["data"]["payment_id"]


def test_a_cancellation_with_refund_reaches_the_receiver_after_the_payment(endpoint, receiver, active, viewer):
    # given a paid subscription whose events were delivered
    from billing import services
    from billing.services import CancelMode

    deliver_all()

    # when the viewer cancels with a refund, and the job runs
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )
    deliver_all()

    # then the receiver got the cancellation and the refund after the activation, each once
    types = receiver.handled_types()
    assert {"subscription.canceled", "refund.succeeded"} <= set(types)
    assert types.index("subscription.activated") < types.index("subscription.canceled")
    assert len(types) == len(set(types))
    ids = [message["data"]["event_id"] for message in receiver.handled]
    assert ids == sorted(ids)


def test_auth_hears_entitlements_granted_on_payment_and_removed_on_refund(endpoint, receiver, active, viewer):
    # given Auth's endpoint, listening to what a viewer may watch, and a viewer who paid (the `active` fixture)
    from billing import services
    from billing.services import CancelMode

    endpoint.event_types = [BillingEventType.ENTITLEMENTS_CHANGED.value]
    endpoint.save(update_fields=["event_types"])
    deliver_all()

    # when the viewer cancels with a refund, and the job runs
    services.subscription_cancel(
        viewer_id=viewer.id, subscription_id=active.pk, mode=CancelMode.NOW_WITH_REFUND, idempotency_key=None
    )
    deliver_all()

    # then Auth verified two entitlements.changed messages, in version order: the plan granted, then nothing
    assert all(received.verified for received in receiver.requests)
    granted, removed = [message["data"] for message in receiver.handled]
    assert receiver.handled_types() == ["entitlements.changed", "entitlements.changed"]
    assert granted["viewer_id"] == removed["viewer_id"] == str(viewer.id)
    assert granted["version"] + 1 == removed["version"]
    assert [entitlement["plan"] for entitlement in granted["entitlements"]] == [active.plan.code]
    assert removed["entitlements"] == []


def test_a_receiver_down_then_up_gets_every_event_once_in_order(endpoint, receiver):
    # given two viewers' events, and a receiver that fails its first 7 requests (500s, then refusing connections)
    first, second = uuid.uuid4(), uuid.uuid4()
    types = [BillingEventType.SUBSCRIPTION_ACTIVATED, BillingEventType.PAYMENT_SUCCEEDED]
    types += [BillingEventType.REFUND_SUCCEEDED, BillingEventType.SUBSCRIPTION_CANCELED]
    events = []
    for event_type in types:
        for viewer_id in (first, second):
            events.append(record(viewer_id, event_type, amount="1.00"))
    receiver.fail_times = 4
    delivery_create_for_events()
    delivery_send_due(time_budget=1)
    url = endpoint.url
    Endpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/refused")
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())
    delivery_send_due(time_budget=0)
    Endpoint.objects.filter(pk=endpoint.pk).update(url=url)

    # when it is up again and the job goes on
    deliver_all()

    # then each event was handled exactly once, each viewer's in the order recorded
    handled_ids = [message["data"]["event_id"] for message in receiver.handled]
    assert sorted(handled_ids) == sorted(event.id for event in events)
    for viewer_id in (first, second):
        mine = [m["data"]["event_id"] for m in receiver.handled if m["data"]["viewer_id"] == str(viewer_id)]
        assert mine == sorted(mine)
    assert any(not received.verified for received in receiver.requests)
    refused = Delivery.objects.filter(attempts_made__error__contains="ConnectionError").exists()
    assert refused


def test_a_later_event_waits_for_an_earlier_one_of_the_same_viewer(endpoint, receiver):
    # given a viewer's two events, the first failing at the receiver, and another viewer's event
    viewer_id, other = uuid.uuid4(), uuid.uuid4()
    older = record(viewer_id, BillingEventType.SUBSCRIPTION_ACTIVATED)
    newer = record(viewer_id, BillingEventType.SUBSCRIPTION_CANCELED)
    record(other, BillingEventType.SUBSCRIPTION_ACTIVATED)
    receiver.fail_times = 1

    # when one run sends what it may
    delivery_create_for_events()
    Delivery.objects.update(next_attempt_at=timezone.now())
    delivery_send_due(time_budget=0)

    # then the newer event was not sent while the older one is owed; the other viewer's was
    sent_ids = [received.message["data"]["event_id"] for received in receiver.requests]
    assert newer.id not in sent_ids
    assert older.id in sent_ids
    assert Delivery.objects.get(event=newer).attempts == 0


def test_forged_and_replayed_messages_fail_verification(endpoint, receiver):
    # given a message as billing signs it
    event = record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    tasks.deliver_events()
    (received,) = receiver.requests
    webhook = Webhook(receiver.secret)
    assert webhook.verify(received.body, received.headers)

    # then a tampered body, another secret, or an old timestamp do not verify
    tampered = received.body.replace(b"1.00", b"9.00")
    with pytest.raises(WebhookVerificationError):
        webhook.verify(tampered, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(received.body, received.headers)
    from deliveries.services import sign

    old = timezone.now() - timedelta(minutes=10)
    replayed = sign(endpoint, received.headers["webhook-id"], received.body, now=old)
    with pytest.raises(WebhookVerificationError, match="too old"):
        webhook.verify(received.body, replayed)
    assert json.loads(received.body)["data"]["event_id"] == event.id


def test_during_a_rotation_both_secrets_verify(endpoint, receiver):
    # given an endpoint whose secret is being rotated
    old_secret = endpoint.secret
    endpoint.secret = new_secret()
    endpoint.previous_secret = old_secret
    endpoint.save()
    record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")

    # when a message goes out
    tasks.deliver_events()

    # then it verifies with the old secret and with the new one
    (received,) = receiver.requests
    assert Webhook(old_secret).verify(received.body, received.headers)
    assert Webhook(endpoint.secret).verify(received.body, received.headers)
    assert len(received.headers["webhook-signature"].split(" ")) == 2


def test_410_disables_the_endpoint_and_keeps_its_deliveries(endpoint, receiver):
    # given a receiver that answers 410 Gone
    receiver.fail_status, receiver.fail_times = 410, 1
    record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")

    # when the job runs
    report = tasks.deliver_events()

    # then the endpoint is disabled with a reason, the delivery waits
    endpoint.refresh_from_db()
    assert report["disabled"] == 1
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert endpoint.disabled_at
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    assert tasks.deliver_events()["delivered"] == 0

    # and once enabled again, it is delivered
    from deliveries.endpoints import endpoint_enable

    assert endpoint_enable(endpoint_id=endpoint.pk) == 1
    assert tasks.deliver_events()["delivered"] == 1
    assert len(receiver.handled) == 1


def test_events_recorded_while_an_endpoint_was_disabled_for_days_are_delivered_once_enabled(endpoint, receiver):
    # given an endpoint an operator disabled, and an event recorded while it was off
    from deliveries.endpoints import endpoint_disable, endpoint_enable

    viewer_id = uuid.uuid4()
    endpoint_disable(endpoint_id=endpoint.pk, reason="Auth is being migrated")
    missed = record(viewer_id, BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    delivery_create_for_events()
    days_ago = timezone.now() - timedelta(days=4)
    Endpoint.objects.filter(pk=endpoint.pk).update(created_at=days_ago, disabled_at=days_ago)
    BillingEvent.objects.filter(pk=missed.pk).update(created_at=days_ago + timedelta(days=1))

    # when it is enabled again days later, past the fan-out's look-back window
    assert delivery_create_for_events() == 0
    endpoint_enable(endpoint_id=endpoint.pk)
    deliver_all()

    # then the event recorded meanwhile reaches the receiver, once
    assert [message["data"]["event_id"] for message in receiver.handled] == [missed.id]


def test_failures_past_the_retry_window_end_dead(endpoint, receiver):
    # given a delivery failing for three days
    receiver.fail_times = None
    record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    delivery_create_for_events()
    delivery_send_due(time_budget=0)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.retry_until > timezone.now() + timedelta(days=2.9)
    Delivery.objects.update(retry_until=timezone.now(), next_attempt_at=timezone.now())

    # when it fails once more
    report = delivery_send_due(time_budget=0)

    # then it is dead with the reason, and nothing sends it again
    delivery.refresh_from_db()
    assert report.dead == 1
    assert delivery.status == DeliveryStatus.DEAD
    assert delivery.last_error.startswith("HTTP 500")
    assert delivery.attempts_made.count() == 2
    assert delivery_send_due(time_budget=0).as_dict() == {"delivered": 0, "retrying": 0, "dead": 0, "disabled": 0}


def test_backoff_grows_with_full_jitter_and_is_capped(settings):
    from deliveries.services import _backoff

    settings.DELIVERY_RETRY_MIN_SECONDS, settings.DELIVERY_RETRY_MAX_SECONDS = 30, 3600
    assert all(30 <= _backoff(1).total_seconds() <= 30 for _ in range(20))
    assert all(30 <= _backoff(4).total_seconds() <= 240 for _ in range(50))
    assert max(_backoff(50).total_seconds() for _ in range(200)) <= 3600


def test_an_endpoint_gets_events_from_its_creation_on_and_older_ones_by_replay(receiver, db):
    # given an event recorded before the endpoint existed
    old = record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    BillingEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    endpoint = Endpoint.objects.create(
        name="later", url=receiver.url, secret=receiver.secret, event_types=["payment.succeeded"]
    )

    # when the job runs, it does not deliver it
    assert tasks.deliver_events()["created"] == 0

    # then a replay of the range delivers it, and a second replay sends it again (same webhook-id)
    assert delivery_replay(endpoint_id=endpoint.pk, from_id=old.id, to_id=old.id) == 1
    assert tasks.send_deliveries()["delivered"] == 1
    assert delivery_replay(endpoint_id=endpoint.pk, from_id=old.id) == 1
    assert tasks.send_deliveries()["delivered"] == 1
    assert len(receiver.requests) == 2
    assert len(receiver.handled) == 1
    assert delivery_resend(delivery_ids=[Delivery.objects.get().pk]) == 1


def test_settings_endpoints_are_synced_and_win(settings, receiver, db):
    # given an Auth endpoint in settings, and the table holding an older url for it
    settings.AUTH_WEBHOOK_URL = receiver.url
    settings.AUTH_WEBHOOK_SECRET = receiver.secret
    settings.AUTH_WEBHOOK_EVENT_TYPES = ["payment.succeeded"]
    Endpoint.objects.create(name="auth", url="http://old.example/", secret=new_secret(), event_types=[])
    record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    Endpoint.objects.filter(name="auth").update(created_at=timezone.now() - timedelta(minutes=1))

    # when the job runs
    tasks.deliver_events()

    # then the settings' url, secret and types were used
    endpoint = Endpoint.objects.get(name="auth")
    assert endpoint.from_settings
    assert endpoint.url == receiver.url
    assert [received.verified for received in receiver.requests] == [True]

    # and once the settings no longer name it, it is disabled, with the reason
    settings.AUTH_WEBHOOK_URL = settings.AUTH_WEBHOOK_SECRET = ""
    from deliveries.endpoints import endpoint_sync_from_settings

    endpoint_sync_from_settings(force=True)
    endpoint.refresh_from_db()
    assert not endpoint.from_settings
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "Removed from the settings."


def test_an_event_with_a_pending_delivery_is_not_purged(endpoint, receiver, settings):
    from billing.retention import event_purge_old
    from deliveries.retention import delivery_purge_old

    # given an old event whose delivery is pending, and an old one delivered
    receiver.fail_times = None
    pending = record(uuid.uuid4(), BillingEventType.PAYMENT_SUCCEEDED, amount="1.00")
    delivery_create_for_events()
    long_ago = timezone.now() - timedelta(days=400)
    BillingEvent.objects.update(created_at=long_ago)
    Delivery.objects.update(created_at=long_ago)

    # when retention runs
    assert delivery_purge_old(time_budget=5) == 0
    assert event_purge_old(time_budget=5) == 0

    # then, once it is delivered, both go
    Delivery.objects.update(status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    assert delivery_purge_old(time_budget=5) == 1
    assert event_purge_old(time_budget=5) == 1
    assert not BillingEvent.objects.filter(pk=pending.pk).exists()
