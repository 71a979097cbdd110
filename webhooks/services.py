"""YooKassa's notifications: check the source, store, then act on what the API says (never on the body).

A notification is a hint that something changed. Handlers re-fetch the object through the
gateway and hand it to billing; duplicates and late news are no-ops answered 200. One from an
address outside YooKassa's networks is only counted (webhooks.untrusted) and answered 403, or 429
past the rate limit.

Every failure is on the notification's row: a database outage is DEFERRED and answered 503, any
other error FAILED and answered 500; either way YooKassa redelivers. When the database is down
even for that write, the row stays RECEIVED until the janitor (webhooks.retention) marks it.
"""

import ipaddress
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
    connections,
)

from billing import clock, selectors, services
from billing.errors import GatewayError, ProviderObjectNotFound
from billing.gateway.interface import ProviderNotificationEvent
from config.client_addresses import address_in
from webhooks.models import NotificationOutcome, YooKassaNotification
from webhooks.untrusted import untrusted_notification_count

logger = logging.getLogger(__name__)

# YooKassa's object ids are 36 characters of hex digits and dashes; allow some slack, nothing else.
_OBJECT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# Database errors that are a bug in what we asked, not the database being away.
_DATABASE_BUGS = (IntegrityError, DataError, ProgrammingError, NotSupportedError)
ERROR_DETAIL_MAX_LENGTH = 2000


@dataclass(frozen=True)
class Receipt:
    """What to answer YooKassa: 200 ends its redeliveries, anything else asks for another try.

    No notification when none was stored: an untrusted one (only counted), or the database is down."""

    http_status: int
    notification: YooKassaNotification | None
    retry_after: int | None = None


def yookassa_notification_receive(*, remote_addr: str | None, body: bytes) -> Receipt:
    if not _is_trusted(remote_addr):
        return _count_untrusted(remote_addr, body)
    try:
        notification = YooKassaNotification.objects.create(
            remote_addr=_valid_ip(remote_addr),
            trusted_source=True,
            # PostgreSQL's text cannot hold NUL: stored as U+FFFD, like bytes that are not UTF-8.
            raw_body=body.decode("utf-8", "replace").replace("\x00", "\ufffd"),
        )
    except Exception as error:
        if not is_database_outage(error):
            raise
        logger.error("Notification from %s not stored, the database is unavailable: %s", remote_addr, _describe(error))
        return Receipt(http_status=503, notification=None)
    try:
        return _process(notification, body)
    except Exception as error:
        if is_database_outage(error):
            logger.warning("Notification %s interrupted by a database outage: %s", notification.id, _describe(error))
            return _record_failure(
                notification, NotificationOutcome.DEFERRED, f"Database unavailable: {_describe(error)}", 503
            )
        logger.exception("Notification %s failed", notification.id)
        return _record_failure(notification, NotificationOutcome.FAILED, _describe(error), 500)


def is_database_outage(error: BaseException) -> bool:
    """The database is away (connection lost, server down, timed out), rather than asked something wrong."""
    return isinstance(error, (DatabaseError, InterfaceError)) and not isinstance(error, _DATABASE_BUGS)


def _count_untrusted(remote_addr: str | None, body: bytes) -> Receipt:
    try:
        tally = untrusted_notification_count(remote_addr=remote_addr, body=body, now=clock.domain_now())
    except Exception as error:
        if not is_database_outage(error):
            raise
        logger.error("Untrusted notification from %s not counted, the database is unavailable", remote_addr)
        return Receipt(http_status=503, notification=None)
    if tally.over_limit:
        return Receipt(http_status=429, notification=None, retry_after=tally.retry_after)
    if tally.received == 1:
        logger.warning("Notifications from untrusted %s (%s) rejected", tally.source_network, remote_addr)
    return Receipt(http_status=403, notification=None)


def _process(notification: YooKassaNotification, body: bytes) -> Receipt:
    parsed = _parse(body)
    if parsed is None:
        return _finish(notification, NotificationOutcome.REJECTED, "Not a YooKassa notification.", 400)
    notification.event, notification.object_id = parsed
    handler = _HANDLERS.get(notification.event)
    if handler is None:
        return _finish(notification, NotificationOutcome.IGNORED, f"No handler for {notification.event}.", 200)
    try:
        outcome, detail = handler(notification)
    except GatewayError as error:
        # We could not verify it now; YooKassa redelivers it later (and reconciliation catches up).
        return _finish(notification, NotificationOutcome.DEFERRED, f"Could not re-fetch: {error}", 503)
    return _finish(notification, outcome, detail, 200)


def _handle_payment_event(notification: YooKassaNotification) -> tuple[str, str]:
    local = selectors.payment_get_by_provider_id(provider_payment_id=notification.object_id)
    if local is not None and not local.is_open:
        notification.payment = local
        return NotificationOutcome.DUPLICATE, f"Payment {local.id} is already {local.status}."
    try:
        payment = services.payment_refresh(provider_payment_id=notification.object_id)
    except ProviderObjectNotFound:
        return NotificationOutcome.IGNORED, "YooKassa does not know this payment."
    except services.UnknownProviderPayment:
        return NotificationOutcome.IGNORED, "Not a payment of this service."
    notification.payment = payment
    return NotificationOutcome.PROCESSED, f"Payment {payment.id} is {payment.status}."


def _handle_refund_event(notification: YooKassaNotification) -> tuple[str, str]:
    local = selectors.refund_get_by_provider_id(provider_refund_id=notification.object_id)
    if local is not None and not local.is_open:
        notification.payment_id = local.payment_id
        return NotificationOutcome.DUPLICATE, f"Refund {local.id} is already {local.status}."
    try:
        refund = services.refund_refresh(provider_refund_id=notification.object_id)
    except ProviderObjectNotFound:
        return NotificationOutcome.IGNORED, "YooKassa does not know this refund."
    except services.UnknownProviderRefund:
        return NotificationOutcome.IGNORED, "Not a refund of this service."
    notification.payment_id = refund.payment_id
    return NotificationOutcome.PROCESSED, f"Refund {refund.id} is {refund.status}."


# Keyed by str enum members, so the raw `event` text of a notification looks its handler up.
_HANDLERS: dict[str, Callable[[YooKassaNotification], tuple[str, str]]] = {
    ProviderNotificationEvent.PAYMENT_SUCCEEDED: _handle_payment_event,
    ProviderNotificationEvent.PAYMENT_CANCELED: _handle_payment_event,
    ProviderNotificationEvent.PAYMENT_WAITING_FOR_CAPTURE: _handle_payment_event,
    ProviderNotificationEvent.REFUND_SUCCEEDED: _handle_refund_event,
}


def _finish(notification: YooKassaNotification, outcome: str, detail: str, http_status: int) -> Receipt:
    notification.outcome = outcome
    notification.detail = detail
    notification.processed_at = clock.domain_now()
    # The raw body was written once, on arrival; only what became of it is written now.
    notification.save(update_fields=["event", "object_id", "payment", "outcome", "detail", "processed_at"])
    return Receipt(http_status=http_status, notification=notification)


def _record_failure(notification: YooKassaNotification, outcome: str, detail: str, http_status: int) -> Receipt:
    """Best effort: when the database is still away the row stays RECEIVED, for the janitor."""
    notification.outcome = outcome
    notification.detail = detail[:ERROR_DETAIL_MAX_LENGTH]
    notification.processed_at = clock.domain_now()
    try:
        _drop_broken_connection()
        # Not the payment link: what the handler was about may have been rolled back.
        notification.save(update_fields=["event", "object_id", "outcome", "detail", "processed_at"])
    except Exception:
        logger.exception("Could not record on notification %s: %s", notification.id, detail)
    return Receipt(http_status=http_status, notification=notification)


def _drop_broken_connection() -> None:
    """A connection the outage broke stays broken; a new one may find the database back. Never
    inside a transaction (a test's, or a caller's), which closing would end."""
    connection = connections[YooKassaNotification.objects.db]
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def _parse(body: bytes) -> tuple[str, str] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not isinstance(data, dict) or data.get("type") != "notification":
        return None
    event, obj = data.get("event"), data.get("object")
    if not isinstance(event, str) or not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    # The id goes into the path of the API call that re-fetches the object: YooKassa's ids only.
    if not (0 < len(event) <= 64 and "\x00" not in event and _OBJECT_ID.fullmatch(obj["id"])):
        return None
    return event, obj["id"]


def _valid_ip(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _is_trusted(address: str | None) -> bool:
    return address_in(address, settings.YOOKASSA_TRUSTED_NETWORKS)
