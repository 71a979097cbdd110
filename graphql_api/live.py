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
from contextlib import asynccontextmanager, suppress

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
# Joining or leaving a payment's group waits this long for the channel layer at most; past it the
# subscription goes on with the timer only, and a socket's end is never held up by Redis.
GROUP_CALL_TIMEOUT = 1.0
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
            async with _hints(consumer, payment_group(payment_id)) as wakeups:
                # In the group before the first read: no change committed after that read goes unheard.
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


@asynccontextmanager
async def _hints(consumer: GraphQLWSConsumer, group: str) -> AsyncIterator["_Wakeups"]:
    """Wakeups by the group's hints and by the timer; by the timer only if the channel layer cannot
    be reached. Joining and leaving the group are bounded: Redis never holds a subscription up."""
    listening = consumer.listen_to_channel(PAYMENT_CHANGED, groups=[group])
    try:
        hints = await asyncio.wait_for(listening.__aenter__(), GROUP_CALL_TIMEOUT)
    except Exception as exc:  # no layer, Redis away or frozen (TimeoutError)
        logger.warning("A live subscription could not join %s (%r): it re-reads on its timer only", group, exc)
        listening = hints = None
    wakeups = _Wakeups(hints)
    try:
        yield wakeups
    finally:
        await wakeups.close()
        if listening is not None:
            try:
                await asyncio.wait_for(listening.__aexit__(None, None, None), GROUP_CALL_TIMEOUT)
            except Exception as exc:
                # The membership expires on its own (the layer's group_expiry); nothing is sent to it meanwhile.
                logger.info("A live subscription could not leave %s: %r", group, exc)


class _Wakeups:
    """Waits for the next hint, or a timeout; a hint that comes after a timeout counts the next time."""

    def __init__(self, hints: AsyncIterator | None) -> None:
        self._hints = hints
        self._next_hint: asyncio.Future | None = None

    async def wait(self, *, timeout: float) -> bool:
        """Whether a hint came (else the timeout passed)."""
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

    async def close(self) -> None:
        if self._next_hint is not None:
            self._next_hint.cancel()
            with suppress(asyncio.CancelledError):
                await self._next_hint
        if self._hints is not None:
            await self._hints.aclose()
