"""A worker killed (SIGKILL) while the receiver holds its POST open: the delivery is not lost. The
claim only pushed `next_attempt_at` past a lease; after it, the next worker sends it again with
the same webhook-id, and the receiver handles it once. PostgreSQL: the worker is a real process
sharing the test database."""

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from billing.events import BillingEventType
from billing.models import BillingEvent
from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import delivery_create_for_events, delivery_send_due
from tests.deliveries.receiver import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 2


def start_worker() -> subprocess.Popen:
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DELIVERY_CONNECT_TIMEOUT": "0.5",
        "DELIVERY_READ_TIMEOUT": "0.5",
        "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    # The task's own code, as a qcluster worker runs it (deliveries.tasks.send_deliveries).
    code = "import django; django.setup(); from deliveries import tasks; print(tasks.send_deliveries())"
    return subprocess.Popen([sys.executable, "-c", code], env=environment, cwd=ROOT)


def test_a_worker_killed_mid_delivery_loses_nothing(endpoint, receiver, settings):
    # given a pending delivery, and a receiver that holds each request open
    BillingEvent.objects.create(type=BillingEventType.SUBSCRIPTION_ACTIVATED, viewer_id=uuid.uuid4(), payload={})
    delivery_create_for_events()
    receiver.hold = threading.Event()
    worker = start_worker()

    # when the worker is killed while its POST is under way
    try:
        assert receiver.arrived.wait(30), "the worker never posted"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    receiver.hold.set()
    receiver.hold = None

    # then the delivery is still owed, leased for a while
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now()
    assert delivery_send_due(time_budget=0).delivered == 0

    # and after the lease the next worker delivers it, handled once at the receiver
    wait_for(lambda: Delivery.objects.get().next_attempt_at <= timezone.now(), timeout=LEASE_SECONDS + 5)
    settings.DELIVERY_LEASE_SECONDS = 6
    assert delivery_send_due(time_budget=0).delivered == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 2
    wait_for(lambda: len(receiver.requests) >= 2)
    ids = {received.headers["webhook-id"] for received in receiver.requests}
    assert len(ids) == 1
    assert len(receiver.handled) == 1
