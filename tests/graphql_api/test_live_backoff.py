"""The fallback re-read backs off while nothing changes (LIVE_PAYMENT_RECHECK_MIN_SECONDS, doubling
up to LIVE_PAYMENT_RECHECK_SECONDS), and a hint brings it back to the start."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from strawberry import relay
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from billing import selectors
from config.asgi import application
from graphql_api.live import PAYMENT_CHANGED, payment_group
from tests.helpers import start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_PAYMENT = "subscription Watch($id: ID!) { payment(id: $id) { status } }"


class ReadTimes:
    """When the live loop's reads of a payment reach the database selector."""

    def __init__(self, monkeypatch) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()
        read = selectors.payment_get_for_viewer

        def timed(**kwargs):
            with self._lock:
                self.times.append(time.monotonic())
            return read(**kwargs)

        monkeypatch.setattr(selectors, "payment_get_for_viewer", timed)

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.times, self.times[1:], strict=False)]


def test_re_reads_back_off_while_nothing_changes_and_a_hint_starts_them_over(
    viewer, token, plan, sandbox, settings, monkeypatch
):
    # given re-reads from 0.1 s doubling up to 1 s, on a pending payment nothing happens to
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = 0.1
    settings.LIVE_PAYMENT_RECHECK_SECONDS = 1.0
    payment = start_checkout(viewer, plan).payment
    reads = ReadTimes(monkeypatch)

    async def watch_quietly_then_hint() -> int:
        async with GraphQLWebsocketCommunicator(
            application, path="/graphql/", connection_params={"Authorization": f"Bearer {token}"}
        ) as client:
            subscribe = {"query": WATCH_PAYMENT, "variables": {"id": str(relay.GlobalID("Payment", str(payment.pk)))}}
            await client.send_json_to({"id": "1", "type": "subscribe", "payload": subscribe})
            await client.receive_json_from(timeout=5)
            # when 2.6 s pass quietly
            await asyncio.sleep(2.6)
            reads_before_the_hint = len(reads.times)
            # and then a hint comes
            await get_channel_layer().group_send(payment_group(payment.pk), {"type": PAYMENT_CHANGED})
            await asyncio.sleep(0.6)
        return reads_before_the_hint

    reads_before_the_hint = async_to_sync(watch_quietly_then_hint)()

    # then the quiet re-reads came 0.1, 0.2, 0.4, 0.8, then 1 s apart (never sooner): 5 in 2.6 s, not 26
    quiet_gaps = reads.gaps()[: reads_before_the_hint - 1]
    assert len(quiet_gaps) in (4, 5), quiet_gaps
    for gap, at_least in zip(quiet_gaps, [0.1, 0.2, 0.4, 0.8, 1.0], strict=False):
        assert gap >= at_least - 0.01, quiet_gaps
    # and the hint's read is followed by one 0.1 s later, not 1 s
    after_the_hint = reads.times[reads_before_the_hint:]
    assert len(after_the_hint) >= 2, reads.times
    assert after_the_hint[1] - after_the_hint[0] < 0.5
