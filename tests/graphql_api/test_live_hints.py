"""Billing's caller never waits for a live hint: from a thread with no event loop (a django-q2
worker, a command), the hint goes to the process's sender thread and the call returns at once."""

import time
import uuid

from billing.models import BillingEvent
from config.settings import base
from graphql_api import hints
from graphql_api.live import on_billing_event
from tests.frozen_redis import FrozenRedis
from tests.helpers import eventually


def test_a_hint_from_outside_any_event_loop_returns_at_once_and_is_sent_by_the_sender_thread(settings):
    with FrozenRedis() as frozen:
        # given a Redis channel layer that never answers
        settings.CHANNEL_LAYERS = base.redis_channel_layers(frozen.url)
        event = BillingEvent(type="payment.succeeded", viewer_id=uuid.uuid4(), payment_id=uuid.uuid4())

        # when billing's listener is called from a plain thread, three times
        started = time.monotonic()
        for _ in range(3):
            on_billing_event(event)
        took = time.monotonic() - started

        # then it returned at once, and the hints are on their way, from the process's sender thread
        assert took < 0.05
        assert eventually(lambda: frozen.connections, timeout=2)
        sender = hints._process_sender()
        assert sender.loop.is_running()
        assert eventually(lambda: sender.loop not in hints._in_flight, timeout=hints.HINT_SEND_TIMEOUT + 2)
