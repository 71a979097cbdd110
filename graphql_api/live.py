"""Live payment status: the `payment(id)` subscription, and the hint that wakes it.

When billing changes a payment it records an event; after commit, `on_billing_event` (named in
BILLING_EVENT_LISTENERS) sends a hint to the payment's channel-layer group. Channel layers deliver
at most once, so a hint only says "look again": the subscription re-reads the payment on every
hint and at least every LIVE_PAYMENT_RECHECK_SECONDS, and sends only what the database says.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress

import strawberry
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import prefetch_related_objects
from graphql import GraphQLError
from strawberry import relay
from strawberry.channels import GraphQLWSConsumer
from strawberry.extensions import SchemaExtension
from strawberry.types import Info
from strawberry.types.graphql import OperationType

from billing import selectors
from billing.models import BillingEvent, Payment, PaymentStatus
from graphql_api import auth
from graphql_api.billing_types import PaymentType
from graphql_api.viewer import uuid_of

logger = logging.getLogger(__name__)

# The channel-layer message type of a hint: the websocket consumer hands these to listen_to_channel.
PAYMENT_CHANGED = "billing.payment_changed"
# Billing's caller (a webhook, a task) does not wait longer than this for the channel layer.
HINT_SEND_TIMEOUT = 2.0
# Woken this long after the token's expiry, the expiry check is sure to see it expired.
EXPIRY_MARGIN = 0.1

# Hints sent from inside a running event loop, kept referenced until sent.
_hints_in_flight: set[asyncio.Task] = set()


def payment_group(payment_id: uuid.UUID) -> str:
    """The channel-layer group of a payment's hints: letters, digits, '-' and '.', 44 characters."""
    return f"payment.{payment_id}"


def on_billing_event(event: BillingEvent) -> None:
    """A billing event listener: wake the live subscriptions of the event's payment, if it has one."""
    if event.payment_id is None or get_channel_layer() is None:
        return
    group = payment_group(event.payment_id)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # The usual case: services run in worker threads (sync_to_async, django-q2 workers), and
        # async_to_sync hands the send to the thread's outer event loop or to a new one.
        async_to_sync(_send_hint)(group)
        return
    # Called from inside an event loop, where async_to_sync cannot block: send in the background.
    task = loop.create_task(_send_hint(group))
    _hints_in_flight.add(task)
    task.add_done_callback(_hint_done)


async def _send_hint(group: str) -> None:
    await asyncio.wait_for(get_channel_layer().group_send(group, {"type": PAYMENT_CHANGED}), HINT_SEND_TIMEOUT)


def _hint_done(task: asyncio.Task) -> None:
    _hints_in_flight.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("A live payment hint was not sent", exc_info=task.exception())


@strawberry.type
class LivePaymentSubscriptions:
    @strawberry.subscription(
        description=(
            "One of the viewer's payments, live: its state now, then again each time its status or refunds "
            "change. Completes once the payment is settled: CANCELED, or SUCCEEDED with no refund in flight. "
            "Null (and complete) for any other id, like the payment query. Over the websocket only."
        )
    )
    async def payment(self, info: Info, id: relay.GlobalID) -> AsyncGenerator[PaymentType | None, None]:
        context: auth.Context = info.context
        viewer = context.viewer
        consumer = context.request
        payment_id = uuid_of(id, "Payment")
        if payment_id is None:
            yield None
            return
        async with consumer.listen_to_channel(PAYMENT_CHANGED, groups=[payment_group(payment_id)]) as hints:
            # In the group before the first read: no change committed after that read goes unheard.
            payment = await _read_payment(viewer_id=viewer.id, payment_id=payment_id)
            if payment is None:
                yield None
                return
            wakeups = _Wakeups(hints)
            try:
                yield payment
                seen = _watched_state(payment)
                while not _is_settled(payment):
                    await wakeups.wait(timeout=_until_next_check(viewer))
                    viewer = context.viewer  # an expired token ends the subscription with its error
                    payment = await _read_payment(viewer_id=viewer.id, payment_id=payment_id)
                    if _watched_state(payment) != seen:
                        seen = _watched_state(payment)
                        yield payment
            finally:
                await wakeups.close()


class SubscriptionsOverWebsocketOnly(SchemaExtension):
    """Django's HTTP view would run a subscription as a query and answer a misleading null."""

    def on_execute(self):
        context = self.execution_context
        if context.operation_type is OperationType.SUBSCRIPTION and not isinstance(
            getattr(context.context, "request", None), GraphQLWSConsumer
        ):
            raise GraphQLError("Subscriptions are served over the websocket at /graphql/ (graphql-transport-ws).")
        yield


@database_sync_to_async
def _read_payment(*, viewer_id: uuid.UUID, payment_id: uuid.UUID) -> Payment | None:
    """The payment as committed now (database_sync_to_async: a websocket's connection is recycled)."""
    payment = selectors.payment_get_for_viewer(viewer_id=viewer_id, payment_id=payment_id)
    if payment is not None:
        prefetch_related_objects([payment], "refunds")
    return payment


def _watched_state(payment: Payment) -> tuple:
    """What a watcher is told about when it changes: the status, the sum refunded, each refund's status."""
    refunds = sorted((str(refund.pk), refund.status) for refund in payment.refunds.all())
    return payment.status, payment.refunded_amount, tuple(refunds)


def _is_settled(payment: Payment) -> bool:
    """Nothing more happens to it unless someone asks: canceled, or paid with no refund in flight."""
    if payment.status == PaymentStatus.CANCELED:
        return True
    return payment.status == PaymentStatus.SUCCEEDED and not any(refund.is_open for refund in payment.refunds.all())


def _until_next_check(viewer: auth.Viewer) -> float:
    """The fallback re-read's interval, cut short to just after the token expires."""
    interval = settings.LIVE_PAYMENT_RECHECK_SECONDS
    if viewer.expires_at is None:
        return interval
    until_expired = viewer.expires_at.timestamp() + auth.CLOCK_SKEW + EXPIRY_MARGIN - time.time()
    return max(0.0, min(interval, until_expired))


class _Wakeups:
    """Waits for the next hint, or a timeout; a hint that comes after a timeout counts the next time."""

    def __init__(self, hints: AsyncIterator) -> None:
        self._hints = hints
        self._next_hint: asyncio.Future | None = None

    async def wait(self, *, timeout: float) -> None:
        if self._next_hint is None:
            self._next_hint = asyncio.ensure_future(anext(self._hints))
        done, _ = await asyncio.wait([self._next_hint], timeout=timeout)
        if done:
            hint, self._next_hint = self._next_hint, None
            hint.result()

    async def close(self) -> None:
        if self._next_hint is not None:
            self._next_hint.cancel()
            with suppress(asyncio.CancelledError):
                await self._next_hint
        await self._hints.aclose()
