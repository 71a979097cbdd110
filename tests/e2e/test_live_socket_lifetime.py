"""Live subscriptions end with their websocket, over a real daphne: the attack of issue 9.

One viewer opens 20 sockets with 100 `payment(id)` subscriptions each on their own pending payment,
then closes them all while every loop has a read of the payment queued (a hint just woke them all).
Every loop must end with its socket: the reads of the payment, counted around the selector the loop
calls, stop within 2 s of the close. Each read is held 5 ms, what a read that opens its own
PostgreSQL connection costs in production (measured: 8 ms), so that 2,000 queued reads keep the
process's one database thread busy for 10 s, as they did in the attack.
"""

import asyncio
import json
import threading
import time

import pytest
import websockets
from channels.layers import get_channel_layer
from strawberry import relay

from billing import selectors
from graphql_api.live import PAYMENT_CHANGED, payment_group
from tests.e2e.daphne_server import running_daphne
from tests.helpers import start_checkout

pytestmark = pytest.mark.django_db(transaction=True)

WATCH_PAYMENT = "subscription Watch($id: ID!) { payment(id: $id) { id status } }"
SOCKETS = 20
SUBSCRIPTIONS_PER_SOCKET = 100
PRODUCTION_READ_COST = 0.005


class CountedReads:
    """Counts the live loops' reads of a payment as they reach the database selector; `cost` holds each."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        self.cost = 0.0
        self._lock = threading.Lock()
        read = selectors.payment_get_for_viewer

        def counted(**kwargs):
            with self._lock:
                self.count += 1
            time.sleep(self.cost)
            return read(**kwargs)

        monkeypatch.setattr(selectors, "payment_get_for_viewer", counted)


async def _open_watching_socket(url: str, token: str, payment_id: str):
    socket = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=30)
    await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    for number in range(SUBSCRIPTIONS_PER_SOCKET):
        subscribe = {"query": WATCH_PAYMENT, "variables": {"id": payment_id}}
        await socket.send(json.dumps({"id": str(number), "type": "subscribe", "payload": subscribe}))
    answers = [json.loads(await socket.recv()) for _ in range(SUBSCRIPTIONS_PER_SOCKET)]
    return socket, answers


async def _open_sockets(url: str, token: str, payment_id: str) -> tuple[list, list[dict]]:
    opened = await asyncio.gather(*(_open_watching_socket(url, token, payment_id) for _ in range(SOCKETS)))
    return [socket for socket, _ in opened], [answer for _, answers in opened for answer in answers]


def _hint(daphne, payment) -> None:
    """What billing's listener sends when the payment changes: every loop wakes and queues a read."""
    send = get_channel_layer().group_send(payment_group(payment.pk), {"type": PAYMENT_CHANGED})
    asyncio.run_coroutine_threadsafe(send, daphne.loop).result(timeout=5)


def test_two_thousand_subscriptions_stop_reading_within_two_seconds_of_their_sockets_closing(
    viewer, token, plan, sandbox, settings, monkeypatch
):
    # given 20 sockets x 100 subscriptions on a viewer's pending payment (no re-read due in the test)
    settings.LIVE_PAYMENT_RECHECK_SECONDS = 600
    settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS = 600
    settings.LIVE_MAX_SOCKETS_PER_VIEWER = SOCKETS
    settings.LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER = SOCKETS * SUBSCRIPTIONS_PER_SOCKET
    payment = start_checkout(viewer, plan).payment
    payment_id = str(relay.GlobalID("Payment", str(payment.pk)))
    reads = CountedReads(monkeypatch)
    daphne = running_daphne()

    async def attack() -> list[dict]:
        sockets, answers = await _open_sockets(daphne.ws_url, token, payment_id)
        # when a hint wakes every loop, and the viewer closes all the sockets at once
        reads.cost = PRODUCTION_READ_COST
        await asyncio.to_thread(_hint, daphne, payment)
        await asyncio.gather(*(socket.close() for socket in sockets))
        return answers

    answers = asyncio.run(attack())
    closed_at = time.monotonic()

    # then every subscription had answered, and from 2 s after the close on, nothing reads the payment
    assert len(answers) == SOCKETS * SUBSCRIPTIONS_PER_SOCKET
    assert {(answer["type"], answer["payload"]["data"]["payment"]["status"]) for answer in answers} == {
        ("next", "PENDING")
    }
    time.sleep(max(0.0, closed_at + 2 - time.monotonic()))
    reads_two_seconds_after_the_close = reads.count
    time.sleep(3)
    assert reads.count == reads_two_seconds_after_the_close
