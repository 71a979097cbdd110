"""Live payment status: the `payment(id)` subscription, and the hint that wakes it.

When billing changes a payment it records an event; after commit, `on_billing_event` (named in
BILLING_EVENT_LISTENERS) sends a hint to the payment's channel-layer group, in the background
(graphql_api/hints.py). Channel layers deliver at most once, so a hint only says "look again": the
subscription re-reads the payment on every hint and on a timer, and sends only what the database
says. The timer starts at LIVE_PAYMENT_RECHECK_MIN_SECONDS after each change or hint and doubles
while nothing changes, up to LIVE_PAYMENT_RECHECK_SECONDS. Without the channel layer (Redis away)
the timer alone keeps the subscription going.

A subscription lives only as long as its websocket (graphql_api/views.py ends it with the socket),
and a viewer holds at most LIVE_MAX_SUBSCRIPTIONS_PER_VIEWER of them (graphql_api/live_limits.py).
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress

import strawberry
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import Error as DatabaseFailure
from django.db.models import prefetch_related_objects
from graphql import GraphQLError
from strawberry import relay
from strawberry.channels import GraphQLWSConsumer
from strawberry.extensions import SchemaExtension
from strawberry.types import Info
from strawberry.types.graphql import OperationType

from billing import selectors
from billing.models import BillingEvent, Payment, PaymentStatus
from graphql_api import auth, live_limits
from graphql_api.billing_types import PaymentType
from graphql_api.hints import hint_send
from graphql_api.viewer import uuid_of

logger = logging.getLogger(__name__)

# The channel-layer message type of a hint: the websocket consumer hands these to listen_to_channel.
PAYMENT_CHANGED = "billing.payment_changed"
# Leaving a payment's group waits this long for the channel layer at most: a socket's end is never
# held up by Redis. (Joining happens in the background, bounded by the layer's own timeouts.)
GROUP_CALL_TIMEOUT = 1.0
# The first read waits this long for the join: joined by then (as usual), the join needs no re-read.
JOIN_HEAD_START = 0.1
# Woken this long after the token's expiry, the expiry check is sure to see it expired.
EXPIRY_MARGIN = 0.1
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
# What a client told SERVICE_UNAVAILABLE waits before it subscribes again.
RETRY_AFTER_SECONDS = 5


class PaymentUnavailable(GraphQLError):
    """The database could not be read: not "no such payment" (null) but a retryable error."""

    def __init__(self) -> None:
        super().__init__(
            "The payment cannot be read right now: subscribe again in a few seconds.",
            extensions={"code": SERVICE_UNAVAILABLE, "retryable": True, "retryAfterSeconds": RETRY_AFTER_SECONDS},
        )


def payment_group(payment_id: uuid.UUID) -> str:
    """The channel-layer group of a payment's hints: letters, digits, '-' and '.', 44 characters."""
    return f"payment.{payment_id}"


def on_billing_event(event: BillingEvent) -> None:
    """A billing event listener: wake the live subscriptions of the event's payment, if it has one.
    Returns at once: the hint is sent in the background, best effort."""
    if event.payment_id is None:
        return
    hint_send(payment_group(event.payment_id), {"type": PAYMENT_CHANGED})


@strawberry.type
class LivePaymentSubscriptions:
    @strawberry.subscription(
        description=(
            "One of the viewer's payments, live: its state now, then again each time its status or refunds "
            "change. Completes once the payment is settled: CANCELED, or SUCCEEDED with no refund in flight. "
            "Null (and complete) for any other id, like the payment query. An error (then complete) with "
            "extensions.code SERVICE_UNAVAILABLE when the payment cannot be read now (retryable: subscribe again "
            "after extensions.retryAfterSeconds), TOO_MANY_SUBSCRIPTIONS past the viewer's cap of live "
            "subscriptions, UNAUTHENTICATED without a valid token. Over the websocket only."
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
        with live_limits.subscription_slot(viewer_id=viewer.id):
            wakeups = _Wakeups(consumer, payment_group(payment_id))
            try:
                await wakeups.give_the_join_a_head_start()
                payment = await _read_payment(viewer_id=viewer.id, payment_id=payment_id)
                yield payment
                interval = _first_interval()
                while payment is not None and not _is_settled(payment):
                    seen = _watched_state(payment)
                    hinted = await wakeups.wait(timeout=_until_next_check(viewer, interval))
                    viewer = context.viewer  # an expired token ends the subscription with its error
                    payment = await _read_payment(viewer_id=viewer.id, payment_id=payment_id)
                    changed = payment is None or _watched_state(payment) != seen
                    # Something is going on after a change or a hint: look again soon, then less and less often.
                    interval = _first_interval() if changed or hinted else _next_interval(interval)
                    if changed:
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


async def _read_payment(*, viewer_id: uuid.UUID, payment_id: uuid.UUID) -> Payment | None:
    """The payment as committed now; a database that cannot answer is a retryable error, never null."""
    try:
        return await _read_payment_now(viewer_id=viewer_id, payment_id=payment_id)
    except DatabaseFailure as exc:
        logger.warning("A live payment subscription could not read payment %s: %r", payment_id, exc)
        raise PaymentUnavailable() from exc


@database_sync_to_async
def _read_payment_now(*, viewer_id: uuid.UUID, payment_id: uuid.UUID) -> Payment | None:
    """database_sync_to_async: a websocket's connection is recycled like a request's."""
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


def _first_interval() -> float:
    return min(settings.LIVE_PAYMENT_RECHECK_MIN_SECONDS, settings.LIVE_PAYMENT_RECHECK_SECONDS)


def _next_interval(interval: float) -> float:
    return min(interval * 2, settings.LIVE_PAYMENT_RECHECK_SECONDS)


def _until_next_check(viewer: auth.Viewer, interval: float) -> float:
    """The fallback re-read's interval, cut short to just after the token expires."""
    if viewer.expires_at is None:
        return interval
    until_expired = viewer.expires_at.timestamp() + auth.CLOCK_SKEW + EXPIRY_MARGIN - time.time()
    return max(0.0, min(interval, until_expired))


class _Wakeups:
    """Wakes the subscription's loop on a hint to the payment's group, or when its timer runs out.

    The group is joined in the background, so the first answer never waits for Redis; the join's
    completion wakes the loop like a hint (a change committed between the first read and the join is
    read then). If the join fails (no channel layer, Redis away or frozen), the timer alone wakes the
    loop. Leaving the group is bounded by GROUP_CALL_TIMEOUT: Redis never holds up a socket's end.
    A hint that comes after a timeout counts the next time.
    """

    def __init__(self, consumer: GraphQLWSConsumer, group: str) -> None:
        self._group = group
        self._listening = consumer.listen_to_channel(PAYMENT_CHANGED, groups=[group])
        self._joining: asyncio.Future | None = asyncio.ensure_future(self._listening.__aenter__())
        self._hints: AsyncIterator | None = None
        self._next_hint: asyncio.Future | None = None

    async def give_the_join_a_head_start(self) -> None:
        await asyncio.wait([self._joining], timeout=JOIN_HEAD_START)
        if self._joining.done():
            self._joined()

    async def wait(self, *, timeout: float) -> bool:
        """Whether a hint (or the join) woke it; False once the timeout passed."""
        deadline = time.monotonic() + timeout
        if self._joining is not None:
            done, _ = await asyncio.wait([self._joining], timeout=timeout)
            if not done:
                return False
            if self._joined():
                return True
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return False
        if self._hints is None:
            await asyncio.sleep(timeout)
            return False
        if self._next_hint is None:
            self._next_hint = asyncio.ensure_future(anext(self._hints))
        done, _ = await asyncio.wait([self._next_hint], timeout=timeout)
        if not done:
            return False
        hint, self._next_hint = self._next_hint, None
        hint.result()
        return True

    def _joined(self) -> bool:
        joining, self._joining = self._joining, None
        if joining.cancelled():
            return False
        if joining.exception() is not None:
            logger.warning(
                "A live subscription could not join %s (%r): it re-reads on its timer only",
                self._group,
                joining.exception(),
            )
            return False
        self._hints = joining.result()
        return True

    async def close(self) -> None:
        if self._joining is not None:
            self._joining.cancel()
            with suppress(Exception, asyncio.CancelledError):
                await self._joining
            self._joined()
        if self._next_hint is not None:
            self._next_hint.cancel()
            with suppress(asyncio.CancelledError):
                await self._next_hint
        if self._hints is None:
            return
        await self._hints.aclose()
        try:
            await asyncio.wait_for(self._listening.__aexit__(None, None, None), GROUP_CALL_TIMEOUT)
        except Exception as exc:
            # The membership expires on its own (the layer's group_expiry); hints to it go nowhere meanwhile.
            logger.info("A live subscription could not leave %s: %r", self._group, exc)
